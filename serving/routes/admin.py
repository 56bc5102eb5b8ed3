"""Admin routes; they need the ``X-API-Key`` header to match ``FSML_API_KEY``."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fsml.serving.deps import AdminDep, StateDep
from fsml.serving.errors import public_reason
from fsml.serving.process import settings_environ
from fsml.serving.schemas import ReloadResponse
from pydantic import BaseModel, Field

from fsml.errors import FsmlError

log = logging.getLogger(__name__)
router = APIRouter(prefix="/admin", tags=["admin"])


@router.post("/reload", response_model=ReloadResponse)
async def reload(_: AdminDep, state: StateDep, feature_service: str | None = None) -> dict[str, object]:
    """Load a model's current champion (``?feature_service=``, default: the default model) and
    swap it in without dropping requests."""
    if feature_service is not None and feature_service not in state.slots:
        raise HTTPException(404, detail=f"feature service {feature_service!r} is not served here")
    try:
        previous, scorer = await state.reload(feature_service)
    except FsmlError as exc:
        raise HTTPException(409, detail=exc.message) from None
    except Exception as exc:  # the registry may be unreachable: keep serving the current model
        log.warning("reload failed, still serving the previous model: %s", exc)
        reason = public_reason(f"{type(exc).__name__}: {exc}")
        raise HTTPException(503, detail=f"reload failed, still serving the previous model: {reason}") from None
    return {
        "reloaded": previous != scorer.version,
        "previous_version": previous,
        "version": scorer.version,
        "feature_service": state.slot(feature_service).name,
    }


class RetrainRequest(BaseModel):
    reason: str = Field("requested over the API", min_length=1, max_length=500)
    feature_service: str | None = Field(None, description="Model to retrain; default: the default model.")


@router.post("/retrain", status_code=202)
async def retrain(
    _: AdminDep, state: StateDep, request: Request, body: RetrainRequest | None = None
) -> dict[str, object]:
    """Start a retraining in its own process (at a lower CPU priority than serving).

    The pipeline reloads this service when it promotes a new champion. 409 if one is running.
    """
    from fsml.locks import is_locked

    body = body or RetrainRequest()
    if body.feature_service is not None and body.feature_service not in state.slots:
        raise HTTPException(404, detail=f"feature service {body.feature_service!r} is not served here")
    settings = state.slot(body.feature_service).settings
    if await asyncio.to_thread(is_locked, settings):
        raise HTTPException(409, detail=f"a retraining of {settings.feature_service} is already running")
    reason = body.reason
    log_path = settings.home / "logs" / f"retrain-{datetime.now(UTC):%Y%m%dT%H%M%S}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**settings_environ(settings), "FSML_SERVICE_URL": str(request.base_url).rstrip("/")}
    command = [
        str(Path(sys.executable).parent / "fsml"),
        "retrain",
        "--feature-service",
        settings.feature_service,
        "--reason",
        f"api: {reason}",
        "--json",
    ]
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(
            command,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=lambda: os.nice(10),  # noqa: PLW1509  (only lowers the child's priority)
        )
    threading.Thread(target=process.wait, daemon=True).start()  # reap it when it ends
    return {"started": True, "pid": process.pid, "reason": reason, "log": str(log_path)}
