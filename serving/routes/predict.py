"""Prediction routes: online features from Redis, the champion's score.

``/v1/predict`` and ``/v1/predict/batch`` score with the default model; every hosted model also
answers at ``/v1/models/{feature_service}/predict`` and ``.../predict/batch``. Request models
are built per feature service at start-up (``serving.schemas.request_model``), so this module
does not use postponed annotations: FastAPI reads them at definition time.
"""

import logging
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, HTTPException
from fsml.serving.decision import decide
from fsml.serving.deps import StateDep
from fsml.serving.features import utc
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
    reader = scorer.reader
    if reader.time_field:
        for row in rows:
            row[reader.time_field] = utc(row.get(reader.time_field))
    try:
        replies = await state.redis.execute(*reader.requests(rows))
    except ONLINE_STORE_ERRORS as exc:
        state.online_store_failed(exc)
        raise HTTPException(503, detail=f"online store unavailable ({type(exc).__name__}); retry later") from None
    now = datetime.now(UTC)
    try:
        vectors = reader.assemble(rows, replies, now)
    except OnDemandFailed as exc:  # the user's function: a 500 that says which view, and a log line
        state.metrics.child(state.metrics.on_demand_errors, slot.name, exc.view).inc()
        log.error("%s: %s", slot.name, exc.message)
        raise HTTPException(500, detail=exc.message) from None
    scores = scorer.predict(vectors)
    predictions = slot.predictions
    model = {"name": scorer.name, "version": scorer.version}
    metrics = state.metrics
    id_field = slot.spec.id_field
    score_histogram = metrics.child(metrics.scores, slot.name)
    out = []
    policy = state.settings.missing_features_decision
    for row, vector, score in zip(rows, vectors, scores, strict=True):
        all_missing = reader.all_missing(vector)
        decision = decide(score, scorer.threshold, all_missing, policy)
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
            at = row.get(reader.time_field) if reader.time_field else None
            predictions.append(
                at or now,
                row,
                vector.values,
                vector.missing,
                vector.stale,
                float(score),
                scorer.name,
                scorer.version,
            )
        report: dict[str, Any] = {"missing": vector.missing, "stale": vector.stale, "all_missing": all_missing}
        if include_values:
            report["values"] = {c: vector.values.get(c) for c in scorer.bundle.card.columns}
        out.append(
            {
                id_field: row.get(id_field),
                "score": float(score),
                "decision": decision,
                "threshold": scorer.threshold,
                "model": model,
                "features": report,
            }
        )
    return out


async def score_batch(
    state: ServiceState, slot: ModelSlot, scorer: Scorer, rows: list[dict[str, Any]], include_values: bool
) -> dict[str, Any]:
    predictions = await score_rows(state, slot, scorer, rows, include_values)
    return {"model": predictions[0]["model"], "threshold": scorer.threshold, "predictions": predictions}


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
    async def predict(body: single, state: StateDep, include_values: bool = False):  # type: ignore[valid-type]
        """Score one request; says which features were missing or stale, and whether all were."""
        rows = [body.model_dump()]  # type: ignore[attr-defined]
        return (await score_rows(state, slot, current_scorer(slot), rows, include_values))[0]

    @api.post(batch_path, response_model=batch_response, response_model_exclude_unset=True, name=f"batch {batch_path}")
    async def predict_batch(body: batch, state: StateDep, include_values: bool = False):  # type: ignore[valid-type]
        """Score up to FSML_BATCH_MAX_ROWS requests with one Redis round trip."""
        rows = [r.model_dump() for r in body.rows]  # type: ignore[attr-defined]
        return await score_batch(state, slot, current_scorer(slot), rows, include_values)
