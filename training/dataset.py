"""Point-in-time correct training sets from a feature service and its label source.

Entity rows are the label source's rows whose label is available at the as-of time; features
come from Feast's ``get_historical_features`` through the feature service, so each row sees the
feature values as of its own timestamp. The set is split by time into train, validation and test
windows, never at random, so the model is always evaluated on a later period than it learnt on.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import duckdb
import numpy as np
import pandas as pd
from fsml.training.windows import Windows

from fsml.errors import FsmlError, ValidationFailed
from fsml.featurestore import ServiceSpec
from fsml.stores import quote_name
from fsml.tables import parquet_files

if TYPE_CHECKING:
    from feast import FeatureStore

    from fsml.settings import Settings
    from fsml.stores.partition import KeyRange

log = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")
MIN_POSITIVES = 5


def _utc(column: str) -> str:
    """Any Parquet time type (naive or zoned; ms, us or ns) as a UTC instant: naive times are
    UTC, as Feast reads them (DuckDB's session time zone is set to UTC)."""
    return f"{quote_name(column)}::TIMESTAMPTZ"


def label_rows(
    spec: ServiceSpec, start: datetime, end: datetime, as_of: datetime | None = None, part: KeyRange | None = None
) -> pd.DataFrame:
    """The label source's rows with ``start <= time < end``: id, join keys, request fields, the
    request's time field and ``event_timestamp`` (both the row's time). With ``as_of``, only rows
    whose label is known then, with it as ``label`` (0/1); with ``part``, only the rows of that
    key range (``fsml.stores.partition``)."""
    src = spec.label_source
    if not src.exists():
        raise FsmlError(f"label source {src.name!r}: no rows at {src.path}")
    query, params = label_query(spec, start, end, as_of, part)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    try:
        describe = con.execute(f"DESCRIBE SELECT * FROM {src.relation()}")
        present = {row[0] for row in describe.fetchall()}
        needed = [src.id, src.timestamp, *spec.join_keys, *spec.request_fields, src.available_at]
        needed += [src.label] if as_of is not None else []
        absent = [c for c in dict.fromkeys(needed) if c not in present and c != spec.time_field]
        if absent:
            raise FsmlError(
                f"label source {src.name!r} ({src.path}) has no column(s) {', '.join(absent)}: it needs its id, "
                f"time, label and the join keys and request fields {spec.name} reads"
            )
        return con.execute(query, params).df()
    except duckdb.Error as exc:
        raise FsmlError(f"cannot read label source {src.path}: {str(exc).splitlines()[0]}") from None


def label_query(
    spec: ServiceSpec, start: datetime, end: datetime, as_of: datetime | None = None, part: KeyRange | None = None
) -> tuple[str, dict[str, object]]:
    """The SQL of ``label_rows`` and its parameters."""
    src = spec.label_source
    times = {i.name for i in spec.inputs if i.dtype == "timestamp"}
    columns = {name: quote_name(name) for name in [src.id, *spec.join_keys, *spec.request_fields]}
    columns |= {name: _utc(name) for name in times if name in columns}
    columns[spec.time_field] = columns["event_timestamp"] = _utc(src.timestamp)
    where = f"{_utc(src.timestamp)} >= $start AND {_utc(src.timestamp)} < $end"
    params: dict[str, object] = {"start": start, "end": end}
    if as_of is not None:
        columns["label"] = f"CAST({quote_name(src.label)} AS BIGINT)"
        where += f" AND {_utc(src.available_at)} <= $as_of"
        params["as_of"] = as_of
    if part is not None:
        where += f" AND {part.entity_predicate()}"
    selected = ", ".join(f"{expr} AS {quote_name(name)}" for name, expr in columns.items())
    query = (
        f"SELECT {selected} FROM {src.relation()} WHERE {where} ORDER BY {_utc(src.timestamp)}, {quote_name(src.id)}"
    )
    return query, params


def entity_rows(spec: ServiceSpec, start: datetime, end: datetime, as_of: datetime) -> pd.DataFrame:
    """Labelled rows with ``start <= timestamp < end`` whose label is known at ``as_of``."""
    return label_rows(spec, start, end, as_of)


def check_offline_tables(spec: ServiceSpec) -> None:
    """Name a missing or unreadable feature table before Feast fails on it somewhere deep."""
    con = duckdb.connect()
    for view, path in spec.offline_paths.items():
        files = parquet_files(path)
        if not files:
            raise FsmlError(f"feature view {view}: missing offline table {path} (run `fsml features build`)")
        try:
            con.execute("SELECT count(*) FROM parquet_metadata(?)", [files]).fetchall()
        except duckdb.Error as exc:
            raise FsmlError(f"feature view {view}: cannot read {path}: {str(exc).splitlines()[0]}") from None


def with_features(store: FeatureStore, spec: ServiceSpec, entities: pd.DataFrame) -> pd.DataFrame:
    """Join every feature of the service onto ``entities`` as of each row's timestamp."""
    check_offline_tables(spec)
    service = store.get_feature_service(spec.name)
    try:
        job = store.get_historical_features(entity_df=entities, features=service, full_feature_names=True)
        df = job.to_df()
    except FsmlError:
        raise
    except Exception as exc:  # the offline store's many error types, reported in one line
        raise FsmlError(
            f"point-in-time join through {spec.name} failed: {type(exc).__name__}: "
            f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        ) from exc
    return df


def labelled_features(store: FeatureStore, spec: ServiceSpec, entities: pd.DataFrame) -> pd.DataFrame:
    """Features of labelled rows, in a stable order: time, then the label source's id."""
    df = with_features(store, spec, entities)
    order = ["event_timestamp", spec.label_source.id]
    return df.sort_values(order, kind="mergesort").reset_index(drop=True)


def split(df: pd.DataFrame, windows: Windows) -> dict[str, pd.DataFrame]:
    ts = df["event_timestamp"]
    return {name: df[(ts >= lo) & (ts < hi)].reset_index(drop=True) for name, (lo, hi) in windows.bounds.items()}


def check_training_set(parts: dict[str, pd.DataFrame], spec: ServiceSpec) -> dict[str, float]:
    """Reject a training set that cannot give a trustworthy model; return its null rates."""
    failures = []
    for name in SPLITS:
        part = parts[name]
        positives = int(part["label"].sum()) if len(part) else 0
        if len(part) == 0:
            failures.append(f"{name} window has no labelled rows")
        elif positives < MIN_POSITIVES:
            failures.append(f"{name} window has {positives} positive labels (< {MIN_POSITIVES})")
        elif positives == len(part):
            failures.append(f"{name} window has only positive labels")
    train = parts["train"]
    if len(train):
        bad_labels = set(train["label"].unique()) - {0, 1}
        if bad_labels:
            failures.append(f"labels must be 0 or 1, found {sorted(bad_labels)}")
        if train[spec.label_source.id].duplicated().any():
            failures.append(f"duplicate {spec.label_source.id} values")
        all_null = [c for c in spec.columns if train[c].isna().all()]
        if all_null:
            failures.append(f"features with no value in the train window: {', '.join(all_null)}")
    if failures:
        raise ValidationFailed("training set", failures)
    return {c: float(train[c].isna().mean()) for c in spec.columns}


def fingerprint(df: pd.DataFrame, columns: list[str]) -> str:
    """Content hash of a training set: same rows, columns, types and values give the same hash."""
    digest = hashlib.sha256()
    for column in columns:
        series = df[column]
        digest.update(f"{column}:{series.dtype}\n".encode())
        digest.update(pd.util.hash_pandas_object(series, index=False).to_numpy(np.uint64).tobytes())
    return digest.hexdigest()


@dataclass
class TrainingSet:
    frame: pd.DataFrame
    parts: dict[str, pd.DataFrame]
    fingerprint: str
    null_rates: dict[str, float]


def first_timestamp(spec: ServiceSpec) -> datetime | None:
    src = spec.label_source
    if not src.exists():
        raise FsmlError(f"label source {src.name!r}: no rows at {src.path}")
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    query = f"SELECT min({_utc(src.timestamp)}) FROM {src.relation()}"
    try:
        return con.execute(query).fetchall()[0][0]
    except duckdb.Error as exc:
        raise FsmlError(f"cannot read label source {src.path}: {str(exc).splitlines()[0]}") from None


def build_training_set(
    store: FeatureStore,
    spec: ServiceSpec,
    windows: Windows,
    warmup_days: float = 0.0,
    settings: Settings | None = None,
) -> TrainingSet:
    """Entity rows of the windows with their point-in-time features, split, checked, hashed.

    Rows within ``warmup_days`` of the first data are left out: their window features (30 days
    of merchant history, say) are still filling up, so they would teach the model, and give the
    monitor as a reference, a distribution that live traffic never has. With ``settings`` of
    the Ray engine, the join runs in partitions on the cluster (``fsml.training.partitions``)
    and gives the same frame.
    """
    start = windows.start
    first = first_timestamp(spec) if warmup_days > 0 else None
    if first is not None:
        start = max(start, first + timedelta(days=warmup_days))
    if settings is not None and settings.engine == "ray":
        from fsml.training.partitions import partitioned_features

        frame = partitioned_features(settings, spec, start, windows.as_of)
    else:
        entities = entity_rows(spec, start, windows.as_of, windows.as_of)
        frame = labelled_features(store, spec, entities) if len(entities) else entities
    if frame.empty:
        raise FsmlError(
            f"empty time window: no labelled {spec.label_source.name} rows between "
            f"{windows.start.isoformat()} and {windows.as_of.isoformat()}"
        )
    log.info("built a training set of %d rows through %s", len(frame), spec.name)
    parts = split(frame, windows)
    null_rates = check_training_set(parts, spec)
    columns = [spec.label_source.id, "event_timestamp", *spec.join_keys, "label", *spec.columns]
    return TrainingSet(frame, parts, fingerprint(frame, columns), null_rates)
