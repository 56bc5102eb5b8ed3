"""Feature rows into the online store through Feast's own conversion and online store code.

Used where rows must reach Redis one moment at a time (traffic replay): the keys, field names
and value encodings are Feast's, so ``get_online_features`` and fsml's reader both see them.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
from feast.utils import _convert_arrow_to_proto

from fsml.featurestore import open_store
from fsml.settings import Settings

Row = tuple[Any, dict[str, Any], Any, Any]  # Feast's (entity key, values, event time, created)


class OnlineWriter:
    def __init__(self, settings: Settings) -> None:
        self.store = open_store(settings)
        self.provider = self.store._get_provider()
        self.views = {v.name: v for v in self.store.list_feature_views() if v.online}

    def protos(self, view: str, table: pa.Table) -> list[Row]:
        """Feast's representation of ``table``'s rows, in order (one conversion for many rows)."""
        feature_view = self.views[view]
        join_keys = {c.name: c.dtype.to_value_type() for c in feature_view.entity_columns}
        return _convert_arrow_to_proto(table.combine_chunks(), feature_view, join_keys) if len(table) else []

    def reset(self) -> int:
        """Delete this project's online rows (every entity key set), with Feast's own call.

        Feast's Redis writes keep the newest row per entity, so an online store that already
        holds later rows cannot be moved back in time by writing earlier ones.
        """
        online_store = self.provider.online_store
        key_sets = {tuple(sorted(v.join_keys)) for v in self.views.values()}
        for keys in key_sets:
            online_store.delete_entity_values(self.store.config, list(keys))
        return len(key_sets)

    async def write(self, view: str, rows: list[Row]) -> None:
        if rows:
            await self.provider.online_write_batch_async(self.store.config, self.views[view], rows, None)
