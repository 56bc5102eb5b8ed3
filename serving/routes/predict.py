"""POST /v1/predict and /v1/predict/batch: online features from Redis, champion's score.

Request models are built per feature service at start-up (``serving.schemas.request_model``),
so this module does not use postponed annotations: FastAPI reads them at definition time.
"""

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, HTTPException
from fsml.serving.decision import decide
from fsml.serving.deps import ScorerDep, StateDep
from fsml.serving.features import utc
from fsml.serving.schemas import BatchResponse, PredictResponse
from fsml.serving.scorer import Scorer
from fsml.serving.state import ONLINE_STORE_ERRORS, ServiceState
from pydantic import BaseModel


async def score_rows(
    state: ServiceState, scorer: Scorer, rows: list[dict[str, Any]], include_values: bool
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
    vectors = reader.assemble(rows, replies, now)
    scores = scorer.predict(vectors)
    log = state.predictions
    model = {"name": scorer.name, "version": scorer.version}
    metrics = state.metrics
    out = []
    policy = state.settings.missing_features_decision
    for row, vector, score in zip(rows, vectors, scores, strict=True):
        all_missing = reader.all_missing(vector)
        decision = decide(score, scorer.threshold, all_missing, policy)
        metrics.child(metrics.predictions, decision).inc()
        if all_missing:
            metrics.all_missing.inc()
        for column in vector.missing:
            metrics.child(metrics.missing, column).inc()
        for column in vector.stale:
            metrics.child(metrics.stale, column).inc()
        if log is not None:
            at = row.get(reader.time_field) if reader.time_field else None
            log.append(
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
                "transaction_id": row.get("transaction_id"),
                "score": float(score),
                "decision": decision,
                "threshold": scorer.threshold,
                "model": model,
                "features": report,
            }
        )
    return out


def router(single: type[BaseModel], batch: type[BaseModel]) -> APIRouter:
    api = APIRouter(tags=["predict"])

    @api.post("/v1/predict", response_model=PredictResponse, response_model_exclude_unset=True)
    async def predict(body: single, state: StateDep, scorer: ScorerDep, include_values: bool = False):  # type: ignore[valid-type]
        """Score one transaction; says which features were missing or stale, and whether all were."""
        return (await score_rows(state, scorer, [body.model_dump()], include_values))[0]  # type: ignore[attr-defined]

    @api.post("/v1/predict/batch", response_model=BatchResponse, response_model_exclude_unset=True)
    async def predict_batch(body: batch, state: StateDep, scorer: ScorerDep, include_values: bool = False):  # type: ignore[valid-type]
        """Score up to FSML_BATCH_MAX_ROWS transactions with one Redis round trip."""
        rows = [r.model_dump() for r in body.rows]  # type: ignore[attr-defined]
        predictions = await score_rows(state, scorer, rows, include_values)
        return {
            "model": predictions[0]["model"],
            "threshold": scorer.threshold,
            "predictions": predictions,
        }

    return api
