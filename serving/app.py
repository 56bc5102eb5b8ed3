"""The FastAPI application: built once per process, model and clients set up at start-up."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from fsml.errors import FsmlError
from fsml.featurestore import describe_service, open_store
from fsml.settings import Settings
from serving.metrics import Metrics, MetricsMiddleware
from serving.routes import admin, health, predict
from serving.schemas import request_model
from serving.state import ServiceState, redis_client

log = logging.getLogger(__name__)


def check_deployable(settings: Settings) -> None:
    if settings.env == "prod" and settings.api_key is None:
        raise FsmlError("FSML_ENV=prod needs FSML_API_KEY for the admin routes; refusing to start")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    check_deployable(settings)
    spec = describe_service(open_store(settings), settings.feature_service)
    single, batch = request_model(spec.inputs, settings.batch_max_rows)
    metrics = Metrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = ServiceState(settings, spec.inputs, redis_client(settings), metrics)
        state.open_prediction_log({f.column: f.dtype for f in spec.features})
        app.state.service = state
        try:
            await state.reload()
        except Exception as exc:  # start anyway: /readyz says why until a model can be loaded
            state.load_error = str(exc)
            log.warning("no model loaded at start-up: %s", exc)
        watcher = asyncio.create_task(state.watch_champion())
        try:
            yield
        finally:
            watcher.cancel()
            if state.predictions is not None:
                await asyncio.to_thread(state.predictions.close)
            await state.redis.aclose()

    app = FastAPI(
        title="fsml scoring service",
        version="1",
        description=f"Scores with the champion of feature service {spec.name}.",
        lifespan=lifespan,
    )
    app.include_router(predict.router(single, batch))
    app.include_router(health.router)
    app.include_router(admin.router)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_exception_handler(RequestValidationError, validation_error)
    return app


async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    """422 naming each bad field. The offending input is echoed back JSON-safe: FastAPI's own
    handler fails (and answers 500) when the input was a non-finite number such as 1e999."""
    errors = [{**e, "input": _json_safe(e.get("input")), "ctx": _json_safe(e.get("ctx"))} for e in exc.errors()]
    return JSONResponse({"detail": [{k: v for k, v in e.items() if v is not None} for e in errors]}, 422)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def create_app_from_env() -> FastAPI:
    """Entry point for ``uvicorn --factory`` and for worker processes of ``fsml serve``."""
    import fsml  # noqa: F401  (typeguard switch before Feast)
    from fsml.console import setup_logging

    setup_logging()
    return create_app(Settings())
