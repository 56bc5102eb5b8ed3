"""One task of batch scoring: a slice of a Parquet file, scored end to end in Arrow.

A slice is the rows of one file whose entity key falls in one range (``fsml.stores.partition``). Its features come from
the offline store's own point-in-time join (``AsofRetrievalJob.join``: one DuckDB ``ASOF
JOIN`` per feature view, the SQL of training sets) reading only the feature rows of the same
key range; the on-demand views run through Feast's python-mode path; the encoder works on Arrow
columns and LightGBM scores the matrix. No DataFrame is built, and a slice holds about
``FSML_SCORE_CHUNK_ROWS`` rows, so memory follows the chunk size, not the file's.

Tasks are pure functions of (plan, slice): the local engine runs them in threads (DuckDB and
LightGBM release the GIL, so one slice's join overlaps another's predict), Ray in its workers.
What a process needs for every slice (the Feast store, the model, the join plan) is built once
per process.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from fsml.serving.batch_rows import split_valid
from fsml.serving.decision import decide_arrow

from fsml.featurestore import ServiceSpec, describe_service, open_store
from fsml.model import ModelBundle, ModelCard
from fsml.settings import Settings
from fsml.stores import quote_name
from fsml.stores.duckdb import AsofRetrievalJob
from fsml.stores.partition import KeyRange

log = logging.getLogger(__name__)

ROW = "__fsml_row"
EVENT = "event_timestamp"  # the column Feast reads entity times from


@dataclass(frozen=True)
class ScoringPlan:
    """Everything a task needs; sent once to each Ray worker."""

    key: str  # names this plan in each process's cache
    settings: Settings
    booster_text: str
    card_json: str
    version: str
    time_field: str
    missing_decision: str = "review"  # FSML_MISSING_FEATURES_DECISION
    predict_threads: int = 1  # LightGBM's cores, shared by the slices in flight
    join_threads: int = 1  # DuckDB's per slice: slices run side by side


@dataclass(frozen=True)
class Slice:
    path: str
    part: KeyRange | None  # None: the whole file
    drop: tuple[str, ...] = ()  # columns not to read: a pandas index stored in the file


@dataclass
class _Context:
    """What a process holds for every slice of one plan."""

    spec: ServiceSpec
    bundle: ModelBundle
    store: Any
    job: Any  # AsofRetrievalJob, or Feast's job when the repo's offline store is another
    con: duckdb.DuckDBPyConnection


_contexts: dict[str, _Context] = {}
_lock = threading.Lock()
_running = [0]  # slices this process is scoring now


def context(plan: ScoringPlan) -> _Context:
    with _lock:
        if plan.key not in _contexts:
            _contexts.clear()  # one plan at a time per process: a new model or run replaces it
            _contexts[plan.key] = _build(plan)
        return _contexts[plan.key]


def release(plan: ScoringPlan) -> None:
    """Drop what this process holds for ``plan`` (the loaded feature rows above all)."""
    with _lock:
        found = _contexts.pop(plan.key, None)
    if found is not None:
        found.con.close()


def _build(plan: ScoringPlan) -> _Context:
    card = ModelCard.model_validate_json(plan.card_json)
    bundle = ModelBundle(booster_text=plan.booster_text, card=card, version=plan.version)
    store = open_store(plan.settings)
    spec = describe_service(store, card.feature_service)
    times = {plan.time_field} | {i.name for i in spec.inputs if i.dtype == "timestamp"}
    kinds = {
        n: pa.timestamp("us", tz="UTC") if n in times else pa.int64() for n in _entity_names(spec, plan.time_field)
    }
    frame = entities_of(spec, plan.time_field, pa.table({n: pa.array([], t) for n, t in kinds.items()})).to_pandas()
    job = store.get_historical_features(
        entity_df=frame, features=store.get_feature_service(spec.name), full_feature_names=True
    )
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"SET threads = {plan.join_threads}")
    return _Context(spec, bundle, store, job, con)


def _entity_names(spec: ServiceSpec, time_field: str) -> list[str]:
    return list(dict.fromkeys([*spec.join_keys, *spec.request_fields, time_field]))


def entities_of(spec: ServiceSpec, time_field: str, good: pa.Table) -> pa.Table:
    """The entity rows Feast joins: keys, request fields and the time field, with the time also
    as Feast's ``event_timestamp`` (unless that is the time field's own name)."""
    entities = good.select(_entity_names(spec, time_field))
    return entities if time_field == EVENT else entities.append_column(EVENT, good[time_field])


def read_slice(con: duckdb.DuckDBPyConnection, piece: Slice) -> pa.Table:
    where = f" WHERE {piece.part.entity_predicate()}" if piece.part else ""
    columns = f"* EXCLUDE ({', '.join(quote_name(c) for c in piece.drop)})" if piece.drop else "*"
    return con.sql(f"SELECT {columns} FROM read_parquet($path){where}", params={"path": piece.path}).to_arrow_table()


def score_slice(plan: ScoringPlan, piece: Slice) -> tuple[pa.Table, pa.Table]:
    """(scored rows, rejected rows with their reason) of one slice."""
    with _in_flight():
        return _score(context(plan), plan, piece)


def _score(ctx: _Context, plan: ScoringPlan, piece: Slice) -> tuple[pa.Table, pa.Table]:
    con = ctx.con.cursor()  # this thread's connection to the process's database
    con.execute("SET TimeZone = 'UTC'")
    try:
        good, rejected = split_valid(read_slice(con, piece), ctx.spec.inputs, plan.time_field)
        features = _features(ctx, con, good, piece.part, plan.time_field)
    finally:
        con.close()
    bundle = ctx.bundle
    matrix = bundle.encoder.arrow(features)
    with _lock:  # the plan's cores shared by the slices in flight: the last slice of a job gets them all
        threads = max(1, plan.predict_threads // max(1, _running[0]))
    scores = bundle.predict_matrix(matrix, num_threads=threads)  # a row's score does not depend on it
    return _scored(good, features, matrix, scores, bundle, plan.missing_decision), rejected


@contextmanager
def _in_flight() -> Iterator[None]:
    with _lock:
        _running[0] += 1
    try:
        yield
    finally:
        with _lock:
            _running[0] -= 1


def _features(ctx: _Context, con: Any, good: pa.Table, part: KeyRange | None, time_field: str) -> pa.Table:
    entities = entities_of(ctx.spec, time_field, good)
    if isinstance(ctx.job, AsofRetrievalJob):  # its join keeps the entity rows' order
        return ctx.job.on_demand(ctx.job.partitioned(part).join(con, entities, search=True))
    entities = entities.append_column(ROW, pa.array(np.arange(good.num_rows, dtype=np.int64)))
    frame = entities.to_pandas()  # another offline store: Feast's own retrieval, in no given order
    job = ctx.store.get_historical_features(
        entity_df=frame, features=ctx.store.get_feature_service(ctx.spec.name), full_feature_names=True
    )
    table = job.to_arrow()
    return table.take(pc.sort_indices(table[ROW]))


def _scored(
    good: pa.Table, features: pa.Table, matrix: np.ndarray, scores: np.ndarray, bundle: ModelBundle, policy: str
) -> pa.Table:
    """The slice's rows with their score, decision (``fsml.serving.decision``: the policy when
    every stored feature is missing), whether that was so, and the missing features' names."""
    card = bundle.card
    rows = good.num_rows
    absent = np.isnan(matrix)  # a number column is NaN in the matrix exactly where null or NaN
    for i, column in enumerate(card.columns):
        kind = features[column].type
        if card.features[i].dtype == "string" or not (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
            absent[:, i] = np.asarray(pc.is_null(features[column], nan_is_null=True))  # codes: NaN when unseen
    all_missing = bundle.all_missing(absent)
    where = np.flatnonzero(absent) % absent.shape[1]  # row by row, in the model's column order
    offsets = np.concatenate([[0], np.cumsum(np.count_nonzero(absent, axis=1))]).astype(np.int32)
    missing = pa.ListArray.from_arrays(pa.array(offsets), pa.array(card.columns, pa.string()).take(where))
    decision = decide_arrow(scores, card.threshold, all_missing, policy)
    return (
        good.append_column("score", pa.array(scores, pa.float64()))
        .append_column("decision", decision)
        .append_column("all_missing", pa.array(all_missing, pa.bool_()))
        .append_column("missing_features", missing)
        .append_column("model_version", pa.array([bundle.version], pa.string()).take(np.zeros(rows, np.int64)))
    )
