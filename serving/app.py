"""The FastAPI application: built once per process, model and clients set up at start-up."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from fsml.serving import docs, limits
from fsml.serving.errors import validation_errors
from fsml.serving.fastpath import PredictFastPath
from fsml.serving.metrics import Metrics, MetricsMiddleware
from fsml.serving.push import ingestor
from fsml.serving.redis_cluster import online_client
from fsml.serving.routes import admin, health, predict, push
from fsml.serving.schemas import request_model, response_model
from fsml.serving.state import ModelSlot, ServiceState, redis_client

from fsml.errors import FsmlError
from fsml.featurestore import describe_service, open_store
from fsml.settings import Settings

log = logging.getLogger(__name__)


def check_deployable(settings: Settings) -> None:
    if settings.env == "prod" and settings.api_key is None:
        raise FsmlError("FSML_ENV=prod needs FSML_API_KEY for the admin routes; refusing to start")


def create_app(settings: Settings | None = None) -> MetricsMiddleware:
    """The service as uvicorn runs it: metrics, request ids and the access log, then body
    limits, then the prediction fast path, then FastAPI."""
    settings = settings or Settings()
    api, slots, metrics = create_fastapi(settings)
    limits.configure(settings)
    fast = PredictFastPath(api, slots)
    bounded = limits.BodyLimits(fast, settings.max_body_bytes, settings.body_timeout_seconds)
    routes = set(fast.routes) | {f"/v1/models/{s.name}" for s in slots}
    return MetricsMiddleware(bounded, metrics, routes=routes, access_log=settings.access_log)


def model_slots(settings: Settings, store: object | None = None) -> list[ModelSlot]:
    """One slot per hosted feature service (``FSML_SERVE_FEATURE_SERVICES``), the default first."""
    store = store or open_store(settings)
    slots = []
    for index, name in enumerate(settings.served_services):
        spec = describe_service(store, name)
        suffix = "" if index == 0 else f"_{name}"
        single, batch = request_model(spec.inputs, settings.batch_max_rows, spec.id_field, spec.time_field, suffix)
        slots.append(ModelSlot(settings.for_service(name), spec, single, batch, response_model(spec.id_field, suffix)))
    return slots


def create_fastapi(settings: Settings) -> tuple[FastAPI, list[ModelSlot], Metrics]:
    """The FastAPI app: every route, the OpenAPI schema, start-up and shutdown."""
    check_deployable(settings)
    store = open_store(settings)
    slots = model_slots(settings, store)
    metrics = Metrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = ServiceState(settings, redis_client(settings), {s.name: s for s in slots}, metrics)
        state.open_prediction_logs()
        open_pushes(state, store)
        app.state.service = state
        await state.load_all()
        # Everything loaded so far (Feast, MLflow, pandas, the model) lives as long as the process:
        # keep it out of the garbage collector's full passes, which otherwise stall requests
        # for tens of milliseconds (gc.freeze, as CPython documents for long-lived servers).
        gc.collect()
        gc.freeze()
        watcher = asyncio.create_task(state.watch_champion())
        pushes = None
        if state.ingestor is not None:
            pushes = asyncio.create_task(state.finish_pushes(await state.recover_pushes()))
        try:
            yield
        finally:
            watcher.cancel()
            if pushes is not None:
                pushes.cancel()
                await state.ingestor.redis.aclose()  # type: ignore[union-attr]
            state.close_challengers()
            await asyncio.to_thread(state.close_prediction_logs)
            await state.redis.aclose()

    names = ", ".join(s.name for s in slots)
    app = FastAPIOffline(  # FastAPI, with Swagger UI and ReDoc served from the package: no CDN
        title="fsml scoring service",
        version="1",
        description=f"Scores with the champions of the feature services {names} (the first at /v1/predict).",
        lifespan=lifespan,
    )
    app.include_router(predict.router(slots), responses=docs.PREDICT_ERRORS)
    app.include_router(health.router, responses=docs.UNAVAILABLE)
    app.include_router(admin.router, responses=docs.ADMIN_ERRORS)
    app.include_router(push.router, responses=docs.ADMIN_ERRORS)
    app.add_exception_handler(RequestValidationError, validation_error)
    docs.document(app, [(s.spec.inputs, s.model_name, "" if i == 0 else f"_{s.name}") for i, s in enumerate(slots)])
    return app, slots, metrics


def open_pushes(state: ServiceState, store: object) -> None:
    """The ingestor of the repo's push sources, and where each model's ``record: true`` pushes
    (its label source, if that is a push source); a repo that cannot take pushes still serves."""
    try:
        # Its own connection and timeout: a push waits for Redis's fsync, and must not hold up
        # (or share the read timeout of) the prediction reads multiplexed on the other one.
        writes = online_client(state.settings, timeout_ms=state.settings.push_timeout_ms, connections=1)
        state.ingestor = ingestor(state.settings, writes, store)
    except FsmlError as exc:
        state.push_error = exc.message
        log.warning("pushes disabled: %s", exc.message)
        return
    for slot in state.slots.values():
        source = slot.spec.label_source.name
        slot.record_source = source if source in state.ingestor.repo.sources else None


async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    """422 naming each bad field, with a bounded, JSON-safe excerpt of the offending input:
    FastAPI's own handler echoes the whole input and fails (500) on a non-finite number."""
    return JSONResponse({"detail": validation_errors(list(exc.errors()))}, 422)


def create_app_from_env() -> MetricsMiddleware:
    """Entry point for ``uvicorn --factory`` and for worker processes of ``fsml serve``."""
    from fsml.serving.lifeline import follow_master

    import fsml  # noqa: F401  (typeguard switch before Feast)
    from fsml.console import setup_logging

    settings = Settings()
    setup_logging(json_lines=settings.log_format == "json")
    follow_master()
    return create_app(settings)
