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

from fsml.errors import FsmlError, ValidationFailed
from fsml.featurestore import ServiceSpec

if TYPE_CHECKING:
    from feast import FeatureStore

    from fsml.settings import Settings
    from fsml.stores.partition import KeyRange

log = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")
MIN_POSITIVES = 5


@dataclass(frozen=True)
class Windows:
    """Half-open time windows [start, end) of each split; ``as_of`` bounds label availability."""

    as_of: datetime
    bounds: dict[str, tuple[datetime, datetime]]

    @classmethod
    def ending_at(cls, as_of: datetime, train_days: int, valid_days: int, test_days: int) -> Windows:
        test_start = as_of - timedelta(days=test_days)
        valid_start = test_start - timedelta(days=valid_days)
        train_start = valid_start - timedelta(days=train_days)
        return cls(
            as_of=as_of,
            bounds={
                "train": (train_start, valid_start),
                "valid": (valid_start, test_start),
                "test": (test_start, as_of),
            },
        )

    @property
    def start(self) -> datetime:
        return self.bounds["train"][0]

    def describe(self) -> dict[str, str]:
        out = {"as_of": self.as_of.isoformat()}
        for split, (lo, hi) in self.bounds.items():
            out[f"{split}_start"], out[f"{split}_end"] = lo.isoformat(), hi.isoformat()
        return out


def entity_rows(spec: ServiceSpec, start: datetime, end: datetime, as_of: datetime) -> pd.DataFrame:
    """Labelled rows with ``start <= timestamp < end`` whose label is known at ``as_of``."""
    return label_frame(spec, *entity_query(spec, start, end, as_of))


def entity_query(
    spec: ServiceSpec,
    start: datetime,
    end: datetime,
    as_of: datetime,
    part: KeyRange | None = None,
    count: bool = False,
) -> tuple[str, list[object]]:
    """The SQL of ``entity_rows`` (optionally only the rows of one key range, or their count)."""
    src = spec.label_source
    keep = [src.id, *spec.join_keys, *(f for f in spec.request_fields if f != src.timestamp)]
    columns = ", ".join(f'"{c}"' for c in dict.fromkeys(keep))
    label = f'CAST("{src.label}" AS BIGINT) AS label'
    select = "count(*)" if count else f'{columns}, "{src.timestamp}", "{src.timestamp}" AS event_timestamp, {label}'
    where = f" AND {part.entity_predicate()}" if part else ""
    order = "" if count else f' ORDER BY "{src.timestamp}", "{src.id}"'
    query = f"""
        SELECT {select}
        FROM read_parquet(?)
        WHERE "{src.timestamp}" >= ? AND "{src.timestamp}" < ? AND "{src.available_at}" <= ?{where}{order}
    """
    return query, [str(src.path), start, end, as_of]


def label_frame(spec: ServiceSpec, query: str, params: list[object]) -> pd.DataFrame:
    src = spec.label_source
    if not src.path.is_file():
        raise FsmlError(f"label source {src.name!r}: missing file {src.path}")
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    try:
        return con.execute(query, params).df()
    except duckdb.Error as exc:
        raise FsmlError(f"cannot read label source {src.path}: {str(exc).splitlines()[0]}") from None


def check_offline_tables(spec: ServiceSpec) -> None:
    """Name a missing or unreadable feature table before Feast fails on it somewhere deep."""
    con = duckdb.connect()
    for view, path in spec.offline_paths.items():
        if not path.is_file():
            raise FsmlError(f"feature view {view}: missing offline table {path} (run `fsml features build`)")
        try:
            con.execute("SELECT count(*) FROM parquet_metadata(?)", [str(path)]).fetchone()
        except duckdb.Error as exc:
            raise FsmlError(f"feature view {view}: cannot read {path}: {str(exc).splitlines()[0]}") from None


def with_features(store: FeatureStore, spec: ServiceSpec, entities: pd.DataFrame) -> pd.DataFrame:
    """Join every feature of the service onto ``entities`` as of each row's timestamp."""
    check_offline_tables(spec)
    service = store.get_feature_service(spec.name)
    try:
        job = store.get_historical_features(entity_df=entities, features=service, full_feature_names=True)
        df = job.to_df()
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
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    return con.execute(f'SELECT min("{src.timestamp}") FROM read_parquet(?)', [str(src.path)]).fetchone()[0]


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
