"""Prediction routes: online features from Redis, the champion's score.

``/v1/predict`` and ``/v1/predict/batch`` score with the default model; every hosted model also
answers at ``/v1/models/{feature_service}/predict`` and ``.../predict/batch``. Request models
are built per feature service at start-up (``serving.schemas.request_model``), so this module
does not use postponed annotations: FastAPI reads them at definition time.

``"record": true`` (with the push key) also pushes the scored rows to the model's label source,
after scoring them on the features before them: an application sends each transaction once.
"""

import logging
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException
from fsml.serving.decision import decide
from fsml.serving.deps import StateDep, push_denied
from fsml.serving.features import utc
from fsml.serving.routes.push import push_rows, recorded_rows
from fsml.serving.scorer import Scorer
from fsml.serving.state import ONLINE_STORE_ERRORS, ModelSlot, ServiceState

from fsml.errors import OnDemandFailed

log = logging.getLogger(__name__)


def model_paths(slot: ModelSlot, default: bool) -> tuple[str, str]:
    """(single, batch) paths of a model; the default model answers at both pairs."""
    if default:
        return "/v1/predict", "/v1/predict/batch"
    return f"/v1/models/{slot.name}/predict", f"/v1/models/{slot.name}/predict/batch"


def current_scorer(slot: ModelSlot) -> Scorer:
    """The model at the moment the request arrives; a reload does not change it under us."""
    scorer = slot.scorer
    if scorer is None:
        raise HTTPException(503, detail=slot.unavailable())
    return scorer


async def score_rows(
    state: ServiceState, slot: ModelSlot, scorer: Scorer, rows: list[dict[str, Any]], include_values: bool
) -> list[dict[str, Any]]:
    """One Redis round trip for all rows, then features, scores and what was missing."""
    return (await score_and_record(state, slot, scorer, rows, include_values, record=False))[0]


async def score_and_record(
    state: ServiceState, slot: ModelSlot, scorer: Scorer, rows: list[dict[str, Any]], include_values: bool,
    record: bool,
) -> tuple[list[dict[str, Any]], dict[str, int] | None]:  # fmt: skip
    """``score_rows``; with ``record``, the rows are checked as pushed rows first and pushed
    after they are scored, and what the push did is returned too."""
    reader = scorer.reader
    now = datetime.now(UTC)
    for row in rows:
        row.pop("record", None)
    if reader.time_field:
        for row in rows:
            row[reader.time_field] = utc(row.get(reader.time_field))
    pushed = recorded_rows(state, slot, rows, reader.time_field, now) if record else []
    try:
        replies = await state.redis.execute(*reader.requests(rows, now))
    except ONLINE_STORE_ERRORS as exc:
        state.online_store_failed(exc)
        raise HTTPException(503, detail=f"online store unavailable ({type(exc).__name__}); retry later") from None
    try:
        vectors = reader.assemble(rows, replies, now)
    except OnDemandFailed as exc:  # the user's function: a 500 that says which view, and a log line
        state.metrics.child(state.metrics.on_demand_errors, slot.name, exc.view).inc()
        log.error("%s: %s", slot.name, exc.message)
        raise HTTPException(500, detail=exc.message) from None
    scores = scorer.predict(vectors)
    times = [(row.get(reader.time_field) if reader.time_field else None) or now for row in rows]
    answered = [scorer] * len(rows)
    challenger = slot.challenger
    if challenger is not None and challenger.champion is scorer:  # canary answers, shadow queue
        answered, scores = challenger.beside(rows, vectors, scores, times)
    recorded = await push_rows(state, slot.record_source, pushed) if record else None  # type: ignore[arg-type]
    predictions = slot.predictions
    metrics = state.metrics
    id_field = slot.spec.id_field
    score_histogram = metrics.child(metrics.scores, slot.name)
    out = []
    policy = state.settings.missing_features_decision
    for row, vector, score, at, by in zip(rows, vectors, scores, times, answered, strict=True):
        all_missing = reader.all_missing(vector)
        decision = decide(score, by.threshold, all_missing, policy)
        metrics.child(metrics.predictions, slot.name, decision).inc()
        score_histogram.observe(score)
        if metrics.sample_age():
            for view, age in vector.ages.items():
                metrics.child(metrics.feature_age, view).observe(age)
        if all_missing:
            metrics.child(metrics.all_missing, slot.name).inc()
        for column in vector.missing:
            metrics.child(metrics.missing, slot.name, column).inc()
        for column in vector.stale:
            metrics.child(metrics.stale, slot.name, column).inc()
        if predictions is not None:
            predictions.append(at, row, vector.values, vector.missing, vector.stale, float(score), by.name, by.version)
        report: dict[str, Any] = {"missing": vector.missing, "stale": vector.stale, "all_missing": all_missing}
        if include_values:
            report["values"] = {c: vector.values.get(c) for c in scorer.bundle.card.columns}
        out.append(
            {
                id_field: row.get(id_field),
                "score": float(score),
                "decision": decision,
                "threshold": by.threshold,
                "model": {"name": by.name, "version": by.version},
                "features": report,
            }
        )
    return out, recorded


async def score_one(
    state: ServiceState, slot: ModelSlot, scorer: Scorer, row: dict[str, Any], include_values: bool, record: bool
) -> dict[str, Any]:
    predictions, recorded = await score_and_record(state, slot, scorer, [row], include_values, record)
    return predictions[0] if recorded is None else {**predictions[0], "recorded": recorded}


async def score_batch(
    state: ServiceState, slot: ModelSlot, scorer: Scorer, rows: list[dict[str, Any]], include_values: bool,
    record: bool = False,
) -> dict[str, Any]:  # fmt: skip
    predictions, recorded = await score_and_record(state, slot, scorer, rows, include_values, record)
    answer = {"model": predictions[0]["model"], "threshold": scorer.threshold, "predictions": predictions}
    return answer if recorded is None else {**answer, "recorded": recorded}


KeyHeader = Annotated[str | None, Header(alias="X-API-Key")]


def allowed_to_record(state: ServiceState, record: bool, key: str | None) -> bool:
    """``record: true`` is a push: it needs the push key."""
    if record and (denied := push_denied(state.settings, key)) is not None:
        raise denied
    return record


def router(slots: list[ModelSlot]) -> APIRouter:
    """The prediction routes of every hosted model; the first is the default."""
    api = APIRouter(tags=["predict"])
    for index, slot in enumerate(slots):
        for default in (True, False) if index == 0 else (False,):
            _add_routes(api, slot, *model_paths(slot, default))
    return api


def _add_routes(api: APIRouter, slot: ModelSlot, single_path: str, batch_path: str) -> None:
    single, batch = slot.single, slot.batch
    response, batch_response = slot.responses

    @api.post(single_path, response_model=response, response_model_exclude_unset=True, name=f"predict {single_path}")
    async def predict(  # type: ignore[valid-type]
        body: single, state: StateDep, key: KeyHeader = None, include_values: bool = False
    ):
        """Score one request; says which features were missing or stale, and whether all were.
        ``record: true`` also pushes it after scoring (push key): the next request sees it."""
        row = body.model_dump()  # type: ignore[attr-defined]
        record = allowed_to_record(state, bool(row.get("record")), key)
        return await score_one(state, slot, current_scorer(slot), row, include_values, record)

    @api.post(batch_path, response_model=batch_response, response_model_exclude_unset=True, name=f"batch {batch_path}")
    async def predict_batch(  # type: ignore[valid-type]
        body: batch, state: StateDep, key: KeyHeader = None, include_values: bool = False
    ):
        """Score up to FSML_BATCH_MAX_ROWS requests with one Redis round trip (``record``: and
        push them)."""
        rows = [r.model_dump() for r in body.rows]  # type: ignore[attr-defined]
        record = allowed_to_record(state, body.record, key)  # type: ignore[attr-defined]
        return await score_batch(state, slot, current_scorer(slot), rows, include_values, record)
