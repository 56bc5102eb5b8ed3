"""POST /v1/predict and /v1/predict/batch: online features from Redis, champion's score.

Request models are built per feature service at start-up (``serving.schemas.request_model``),
so this module does not use postponed annotations: FastAPI reads them at definition time.
"""

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException
from fsml.serving.decision import decide
from fsml.serving.deps import ScorerDep, StateDep, push_denied
from fsml.serving.features import utc
from fsml.serving.routes.push import push_rows, recorded_rows
from fsml.serving.schemas import BatchResponse, PredictResponse
from fsml.serving.scorer import Scorer
from fsml.serving.state import ONLINE_STORE_ERRORS, ServiceState
from pydantic import BaseModel


async def score_rows(
    state: ServiceState, scorer: Scorer, rows: list[dict[str, Any]], include_values: bool, record: bool = False
) -> tuple[list[dict[str, Any]], dict[str, int] | None]:
    """One Redis round trip for all rows, then features, scores and what was missing. With
    ``record``, the rows are then pushed to the service's label source (checked before scoring),
    so an application sends each transaction once: scored on the features before it."""
    reader = scorer.reader
    now = datetime.now(UTC)
    for row in rows:
        row.pop("record", None)
    if reader.time_field:
        for row in rows:
            row[reader.time_field] = utc(row.get(reader.time_field))
    if record:
        pushed = recorded_rows(state, rows, reader.time_field, now)
    try:
        replies = await state.redis.send_payload(*reader.payload(rows, now))
    except ONLINE_STORE_ERRORS as exc:
        state.online_store_failed(exc)
        raise HTTPException(503, detail=f"online store unavailable ({type(exc).__name__}); retry later") from None
    vectors = reader.assemble(rows, replies, now)
    scores = scorer.predict(vectors)
    recorded = await push_rows(state, state.record_source, pushed) if record else None
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
    return out, recorded


KeyHeader = Annotated[str | None, Header(alias="X-API-Key")]


def _allowed(state: ServiceState, record: bool, key: str | None) -> bool:
    if record and (denied := push_denied(state.settings, key)) is not None:
        raise denied
    return record


def single_answer(predictions: list[dict[str, Any]], recorded: dict[str, int] | None) -> dict[str, Any]:
    return predictions[0] if recorded is None else {**predictions[0], "recorded": recorded}


def batch_answer(predictions: list[dict[str, Any]], recorded: dict[str, int] | None, scorer: Scorer) -> dict[str, Any]:
    answer = {"model": predictions[0]["model"], "threshold": scorer.threshold, "predictions": predictions}
    return answer if recorded is None else {**answer, "recorded": recorded}


def router(single: type[BaseModel], batch: type[BaseModel]) -> APIRouter:
    api = APIRouter(tags=["predict"])

    @api.post("/v1/predict", response_model=PredictResponse, response_model_exclude_unset=True)
    async def predict(  # type: ignore[valid-type]
        body: single, state: StateDep, scorer: ScorerDep, key: KeyHeader = None, include_values: bool = False
    ):
        """Score one transaction; says which features were missing or stale, and whether all were.
        ``record: true`` also pushes it (after scoring; needs the push key): the next request sees it."""
        row = body.model_dump()  # type: ignore[attr-defined]
        record = _allowed(state, bool(row.get("record")), key)
        return single_answer(*await score_rows(state, scorer, [row], include_values, record))

    @api.post("/v1/predict/batch", response_model=BatchResponse, response_model_exclude_unset=True)
    async def predict_batch(  # type: ignore[valid-type]
        body: batch, state: StateDep, scorer: ScorerDep, key: KeyHeader = None, include_values: bool = False
    ):
        """Score up to FSML_BATCH_MAX_ROWS transactions with one Redis round trip."""
        rows = [r.model_dump() for r in body.rows]  # type: ignore[attr-defined]
        record = _allowed(state, body.record, key)  # type: ignore[attr-defined]
        scored = await score_rows(state, scorer, rows, include_values, record)
        return batch_answer(*scored, scorer)

    return api
