"""Liveness, readiness, the served model's description and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from fsml.serving.deps import ScorerDep, StateDep
from fsml.serving.schemas import ModelInfo
from fsml.serving.state import ONLINE_STORE_ERRORS

router = APIRouter()


@router.get("/healthz", tags=["health"])
async def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@router.get("/readyz", tags=["health"])
async def readyz(state: StateDep) -> JSONResponse:
    """Ready when Redis answers and a model is loaded; 503 with the reason otherwise."""
    problems = []
    try:
        await state.redis.ping()
    except ONLINE_STORE_ERRORS as exc:
        state.online_store_failed(exc)
        problems.append(f"online store unavailable ({type(exc).__name__})")
    if state.scorer is None:
        problems.append(f"no model loaded: {state.load_error or 'loading'}")
    if problems:
        return JSONResponse({"status": "unavailable", "problems": problems}, status_code=503)
    return JSONResponse({"status": "ready", "model_version": state.scorer.version})


@router.get("/v1/model", response_model=ModelInfo, tags=["model"])
async def model(scorer: ScorerDep) -> dict[str, object]:
    """Name, version, alias, feature service, training window and metrics of the served model."""
    return scorer.describe()


@router.get("/metrics", tags=["health"])
async def metrics(state: StateDep) -> Response:
    body, content_type = state.metrics.render()
    return Response(body, media_type=content_type)
