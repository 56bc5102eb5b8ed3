"""Liveness, readiness, the served model's description and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Response
from fastapi.responses import JSONResponse
from fsml.serving.deps import ScorerDep, SlotDep, StateDep
from fsml.serving.schemas import ModelInfo
from fsml.serving.state import ONLINE_STORE_ERRORS

router = APIRouter()


@router.get("/healthz", tags=["health"])
async def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@router.get("/readyz", tags=["health"])
async def readyz(state: StateDep) -> JSONResponse:
    """Ready when every hosted model is loaded and the online store holds rows of every view they
    read (one round trip: the views' markers); 503 with the reasons otherwise."""
    problems = [slot.unavailable() for slot in state.slots.values() if slot.scorer is None]
    readers = [s.scorer.reader for s in state.slots.values() if s.scorer and s.scorer.reader.marker_payload]
    try:
        if not readers:
            await state.redis.ping()
        else:
            commands = [reader.marker_payload for reader in readers]
            replies = await state.redis.execute(commands, [reader.marker_key for reader in readers])
            empty = dict.fromkeys(
                view
                for reader, marks in zip(readers, replies, strict=True)
                for view, mark in zip(reader.views, marks, strict=True)
                if mark is None
            )
            if empty:
                problems.append(f"online store holds no rows of {', '.join(empty)}: run `fsml features materialize`")
    except ONLINE_STORE_ERRORS as exc:
        state.online_store_failed(exc)
        problems.append(f"online store unavailable ({type(exc).__name__})")
    if problems:
        return JSONResponse({"status": "unavailable", "problems": problems}, status_code=503)
    versions = {name: slot.scorer.version for name, slot in state.slots.items()}
    return JSONResponse({"status": "ready", "model_version": state.default.scorer.version, "models": versions})


@router.get("/v1/model", response_model=ModelInfo, tags=["model"])
async def model(scorer: ScorerDep) -> dict[str, object]:
    """Name, version, alias, feature service, training window and metrics of the default model."""
    return scorer.describe()


@router.get("/v1/models", tags=["model"])
async def models(state: StateDep) -> dict[str, object]:
    """Every hosted model by feature service (the first is the default, at /v1/predict)."""
    return {
        "default": state.default.name,
        "models": {
            name: slot.scorer.describe() if slot.scorer else {"error": slot.unavailable()}
            for name, slot in state.slots.items()
        },
    }


@router.get("/v1/models/{feature_service}", response_model=ModelInfo, tags=["model"])
async def one_model(slot: SlotDep) -> dict[str, object]:
    """The hosted model of a feature service."""
    if slot.scorer is None:
        raise HTTPException(503, detail=slot.unavailable())
    return slot.scorer.describe()


@router.get("/metrics", tags=["health"])
async def metrics(state: StateDep) -> Response:
    body, content_type = state.metrics.render()
    return Response(body, media_type=content_type)
