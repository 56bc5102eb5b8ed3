"""Feast's DuckDB offline store with point-in-time joins done by DuckDB's ``ASOF JOIN``.

Stock Feast joins each entity row to every feature row of the same key inside the TTL (a range
join) and then keeps the newest with ``row_number()``; the work grows with the number of feature
rows per key. An ``ASOF LEFT JOIN`` finds the newest feature row at or before each entity row
directly. The semantics are Feast's, and a differential test checks them on random data:

- a feature row counts if its event time is at or before the entity row's, and, when the view
  has a TTL, not older than the entity row's time minus the TTL (both ends inclusive);
- among rows with the same key and event time, the latest created timestamp wins (the join is
  on the pair ``(event, created)``, so no separate pass removes the duplicates). That pair costs
  about 50% more than joining on the event time alone, so a table whose (key, event time) pairs
  are unique, which a duplicate check finds once per file version, joins on the event time;
- an entity row without such a row gets nulls; output columns are the entity columns followed
  by the requested features, named ``view__feature`` with full feature names. Rows come back in
  the entity frame's order (stock Feast does not promise an order: code that must work on both
  sorts on a column of its own).

Each view is joined on its own, from the entity keys and times only, and only the feature rows
that can matter are read (``fsml.stores.asof``, the retrieval job).

Requests outside that (SQL entity queries, non-file sources, field mappings, the created
timestamp cut-off) go to Feast's own implementation, reading files as ``fsml.stores.files``
says (relative paths are the repo's).
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import pandas as pd
from feast.data_format import ParquetFormat
from feast.infra.offline_stores import ibis as feast_ibis
from feast.infra.offline_stores import offline_utils
from feast.infra.offline_stores.duckdb import DuckDBOfflineStore as _FeastDuckDBOfflineStore
from feast.infra.offline_stores.duckdb import DuckDBOfflineStoreConfig as _FeastDuckDBConfig
from feast.infra.offline_stores.file_source import FileSource
from feast.infra.offline_stores.offline_store import RetrievalJob, RetrievalMetadata
from feast.on_demand_feature_view import OnDemandFeatureView
from feast.utils import make_df_tzaware

from fsml.stores.asof import AsofRetrievalJob, _unique_events, view_join_keys
from fsml.stores.files import ibis_options, through_ibis

__all__ = ["AsofRetrievalJob", "DuckDBOfflineStore", "DuckDBOfflineStoreConfig", "_unique_events", "view_join_keys"]

log = logging.getLogger(__name__)


class DuckDBOfflineStoreConfig(_FeastDuckDBConfig):
    type: Literal["fsml.stores.duckdb.DuckDBOfflineStore"] = "fsml.stores.duckdb.DuckDBOfflineStore"  # type: ignore[assignment]


def supported(feature_views: list[Any], entity_df: Any, kwargs: dict[str, Any]) -> bool:
    if not isinstance(entity_df, pd.DataFrame) or kwargs.get("filter_by_created_timestamp"):
        return False
    for view in feature_views:
        source = view.batch_source
        if not isinstance(source, FileSource) or source.field_mapping or source.date_partition_column:
            return False
        if source.file_format is not None and not isinstance(source.file_format, ParquetFormat):
            return False  # Delta: Feast's own reader
        if "://" in str(source.path):
            return False
    return True


class DuckDBOfflineStore(_FeastDuckDBOfflineStore):
    """Feast's DuckDB offline store; ``get_historical_features`` joins with ``ASOF JOIN``."""

    # Feast's reads for materialization, with the source's path resolved against the repo
    pull_latest_from_table_or_query = through_ibis(
        "pull_latest_from_table_or_query", feast_ibis.pull_latest_from_table_or_query_ibis
    )
    pull_all_from_table_or_query = through_ibis(
        "pull_all_from_table_or_query", feast_ibis.pull_all_from_table_or_query_ibis
    )

    @staticmethod
    def get_historical_features(
        config: Any,
        feature_views: list[Any],
        feature_refs: list[str],
        entity_df: pd.DataFrame | str,
        registry: Any,
        project: str,
        full_feature_names: bool = False,
        **kwargs: Any,
    ) -> RetrievalJob:
        _stored_tables(feature_views, registry, project)
        if not supported(feature_views, entity_df, kwargs):
            log.debug("falling back to Feast's point-in-time join")
            if isinstance(entity_df, pd.DataFrame) and not getattr(config, "coerce_tz_aware", True):
                entity_df = make_df_tzaware(entity_df)  # what Feast does before its own stores
            return feast_ibis.get_historical_features_ibis(
                config=config,
                feature_views=feature_views,
                feature_refs=feature_refs,
                entity_df=entity_df,
                registry=registry,
                project=project,
                full_feature_names=full_feature_names,
                **kwargs,
                **ibis_options(config),
            )
        schema = dict(zip(entity_df.columns, entity_df.dtypes, strict=True))
        timestamp_column = offline_utils.infer_event_timestamp_from_entity_df(schema)
        views = []
        for view in feature_views:
            prefix = view.projection.name_to_use()
            features = [ref.split(":", 1)[1] for ref in feature_refs if ref.startswith(f"{prefix}:")]
            base = view.projection.name_alias or view.name
            names = [f"{base}__{f}" if full_feature_names else f for f in features]
            views.append((view, features, names))
        entity_df = _to_utc(entity_df, timestamp_column)
        metadata = RetrievalMetadata(
            features=feature_refs,
            keys=[c for c in entity_df.columns if c != timestamp_column],
            min_event_timestamp=_aware(entity_df[timestamp_column].min()),
            max_event_timestamp=_aware(entity_df[timestamp_column].max()),
        )
        return AsofRetrievalJob(
            entity_df=entity_df,
            timestamp_column=timestamp_column,
            views=views,
            repo_path=str(config.repo_path) if config.repo_path else "",
            on_demand_feature_views=OnDemandFeatureView.get_requested_odfvs(feature_refs, project, registry),
            full_feature_names=full_feature_names,
            metadata=metadata,
        )


def _stored_tables(feature_views: list[Any], registry: Any, project: str) -> None:
    """A stream feature view's batch source as registered: the table of its aggregated rows.
    Feast copies views per request and rebuilds a stream view's batch source from its stream
    source in the copy; the registry keeps the declared one."""
    for view in feature_views:
        if getattr(view, "aggregations", None):
            view.batch_source = registry.get_stream_feature_view(view.name, project).batch_source


def _aware(moment: Any) -> Any:
    stamp = pd.Timestamp(moment)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _to_utc(entity_df: pd.DataFrame, column: str) -> pd.DataFrame:
    """As Feast does: times given as text become UTC times; time columns are kept as they are
    (naive ones are read as UTC). Unlike Feast, the caller's frame is not modified."""
    values = entity_df[column].infer_objects()
    if pd.api.types.is_string_dtype(values) or pd.api.types.is_object_dtype(values):
        return entity_df.assign(**{column: pd.to_datetime(values, utc=True)})
    return entity_df
