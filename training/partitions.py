"""A training set's point-in-time join cut into partitions, for a Ray cluster.

The labelled entity rows are cut by ranges of an entity key (``fsml.stores.partition``), as
many as the cluster has CPUs, and by time, so that a partition holds about
``FSML_PARTITION_ROWS`` rows. Each partition is a task: it reads its own entity rows from the
label source (a path every node sees), and joins them through Feast with the repo's offline
store, as the local engine does, except that the feature rows read are those of its key range
and time range. The
driver concatenates the partitions and sorts them the way ``labelled_features`` does (time,
then the label source's id, a total order), so the frame, and its fingerprint, are the local
engine's exactly; a test compares them.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime
from functools import lru_cache
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
from fsml.training.dataset import check_offline_tables, label_query, label_rows

from fsml.distributed import Progress, ordered_results, ray_cpus, ray_session
from fsml.errors import FsmlError
from fsml.featurestore import ServiceSpec, open_store
from fsml.settings import Settings
from fsml.stores.duckdb import AsofRetrievalJob
from fsml.stores.partition import KeyRange, key_ranges, partition_key

log = logging.getLogger(__name__)


def partitioned_features(
    settings: Settings, spec: ServiceSpec, start: datetime, as_of: datetime, progress: Progress | None = None
) -> pd.DataFrame:
    """``labelled_features`` of the rows ``entity_rows(spec, start, as_of, as_of)`` would give."""
    key, key_type = partition_key(open_store(settings), spec.name)
    sql, params = label_query(spec, start, as_of, as_of)
    rows = duckdb.connect().execute(f"SELECT count(*) FROM ({sql})", params).fetchall()[0][0]
    if rows == 0:
        return pd.DataFrame()
    with ray_session(settings) as ray:
        ranges = key_ranges(key, key_type, f"({sql})", params, ray_cpus(ray))
        slices = max(1, math.ceil(rows / settings.partition_rows / len(ranges)))
        cuts = [start + (as_of - start) * t / slices for t in range(slices)] + [as_of]
        tasks = [(part, low, high) for low, high in zip(cuts[:-1], cuts[1:], strict=True) for part in ranges]
        log.info("training-set join in %d partitions (%d key ranges × %d time slices)", len(tasks), len(ranges), slices)
        shared = (settings, spec, as_of)
        parts = [p for p in ordered_results(settings, partition_join, shared, tasks, progress, "partition") if p]
    table = pa.concat_tables(parts, promote_options="permissive")
    frame = table.to_pandas()
    order = ["event_timestamp", spec.label_source.id]
    return frame.sort_values(order, kind="mergesort").reset_index(drop=True)


@lru_cache(maxsize=2)
def _store(settings_json: str) -> Any:
    return open_store(Settings.model_validate_json(settings_json))


def partition_join(
    shared: tuple[Settings, ServiceSpec, datetime], part: KeyRange, low: datetime, high: datetime
) -> pa.Table | None:
    """One partition's labelled rows with their features (None when it has no rows)."""
    settings, spec, as_of = shared
    entities = label_rows(spec, low, high, as_of, part)
    if entities.empty:
        return None
    check_offline_tables(spec)
    store = _store(settings.model_dump_json())
    try:
        job = store.get_historical_features(
            entity_df=entities, features=store.get_feature_service(spec.name), full_feature_names=True
        )
        if isinstance(job, AsofRetrievalJob):
            job = job.partitioned(part)
        return job.to_arrow()
    except Exception as exc:  # the offline store's many error types, reported in one line
        raise FsmlError(f"point-in-time join through {spec.name} failed: {type(exc).__name__}: {exc}") from exc
