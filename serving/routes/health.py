"""Liveness, readiness, the served model's description and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from fsml.serving.deps import ScorerDep, StateDep, no_model
from fsml.serving.schemas import ModelInfo
from fsml.serving.state import ONLINE_STORE_ERRORS

router = APIRouter()


@router.get("/healthz", tags=["health"])
async def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@router.get("/readyz", tags=["health"])
async def readyz(state: StateDep) -> JSONResponse:
    """Ready when a model is loaded and the online store holds rows of every view it reads (one
    round trip: the views' markers); 503 with the reasons otherwise."""
    problems = []
    scorer = state.scorer
    if scorer is None:
        problems.append(no_model(state))
    try:
        if scorer is None or scorer.reader.marker_payload is None:
            await state.redis.ping()
        else:
            reader = scorer.reader
            marks = (await state.redis.execute([reader.marker_payload], [reader.marker_key]))[0]
            empty = [view for view, mark in zip(scorer.reader.views, marks, strict=True) if mark is None]
            if empty:
                problems.append(
                    f"online store holds no rows of {', '.join(empty)}: run `fsml features materialize`"
                )
    except ONLINE_STORE_ERRORS as exc:
        state.online_store_failed(exc)
        problems.append(f"online store unavailable ({type(exc).__name__})")
    if problems:
        return JSONResponse({"status": "unavailable", "problems": problems}, status_code=503)
    return JSONResponse({"status": "ready", "model_version": scorer.version})


@router.get("/v1/model", response_model=ModelInfo, tags=["model"])
async def model(scorer: ScorerDep) -> dict[str, object]:
    """Name, version, alias, feature service, training window and metrics of the served model."""
    return scorer.describe()


@router.get("/metrics", tags=["health"])
async def metrics(state: StateDep) -> Response:
    body, content_type = state.metrics.render()
    return Response(body, media_type=content_type)
