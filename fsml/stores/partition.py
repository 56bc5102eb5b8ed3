"""Partitions of entity rows by a hash of their keys, the unit of distributed joins.

A point-in-time join of one partition of the entity rows needs only the feature rows with the
same keys, so each partition reads 1/n of the views keyed by the partition's keys (and every
row of the others). DuckDB's ``hash`` picks the partition on both sides, on values cast to the
key's declared type so that an entity column read as DOUBLE or text lands where the feature
table's BIGINT does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from feast.value_type import ValueType

from fsml.stores.duckdb import quote_name

SQL_TYPES = {ValueType.INT64: "BIGINT", ValueType.INT32: "INTEGER", ValueType.STRING: "VARCHAR"}


@dataclass(frozen=True)
class Bucket:
    """Partition ``index`` of ``count``: rows whose hashed keys fall in it."""

    keys: tuple[str, ...]  # entity column names, in hashing order
    types: tuple[str, ...]  # SQL type of each key
    count: int
    index: int

    def covers(self, columns: Iterable[str]) -> bool:
        """Whether a view joined on ``columns`` is keyed exactly by this partition's keys."""
        return sorted(columns) == sorted(self.keys)

    def expression(self, columns: Mapping[str, str] | None = None, cast: str = "CAST") -> str:
        """The partition number of a row; ``columns`` maps our key names to the relation's."""
        names = columns or {k: k for k in self.keys}
        values = ", ".join(f"{cast}({quote_name(names[k])} AS {t})" for k, t in zip(self.keys, self.types, strict=True))
        return f"hash({values}) % {self.count}"

    def predicate(self, table_columns: Mapping[str, str]) -> str:
        """SQL true for the feature rows of this partition; ``table_columns`` maps the
        table's key columns to the entity columns (a view's join key map)."""
        ours = {entity: table for table, entity in table_columns.items()}
        return f"{self.expression(ours)} = {self.index}"

    def entity_predicate(self) -> str:
        """The same test on entity rows, whose keys may need coercion (TRY_CAST: a bad value is
        rejected later, wherever it lands)."""
        return f"{self.expression(cast='TRY_CAST')} = {self.index}"


def buckets(keys: tuple[str, ...], types: tuple[str, ...], count: int) -> list[Bucket]:
    return [Bucket(keys, types, count, index) for index in range(count)]


def partition_keys(store: Any, service_name: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Entity columns to partition a service's entity rows by, and their SQL types: the keys of
    its largest file-backed feature view, the one whose rows a partition most needs to cut."""
    from feast.infra.offline_stores.file_source import FileSource

    best: tuple[int, tuple[str, ...], tuple[str, ...]] = (-1, (), ())
    for projection in store.get_feature_service(service_name).feature_view_projections:
        try:
            view = store.get_feature_view(projection.name)
        except Exception:  # an on-demand view: no table of its own
            continue
        source = view.batch_source
        if not isinstance(source, FileSource):
            continue
        path = FileSource.get_uri_for_file_path(str(store.repo_path), source.path)
        try:
            rows = pq.ParquetFile(path).metadata.num_rows
        except (OSError, pa.ArrowException):
            rows = 0
        mapping = projection.join_key_map or {}
        keys = tuple(mapping.get(c.name, c.name) for c in view.entity_columns)
        types = tuple(SQL_TYPES.get(c.dtype.to_value_type(), "VARCHAR") for c in view.entity_columns)
        if keys and rows > best[0]:
            best = (rows, keys, types)
    return best[1], best[2]
