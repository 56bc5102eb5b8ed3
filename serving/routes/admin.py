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
async def reload(_: AdminDep, state: StateDep) -> dict[str, object]:
    """Load the registry's current champion and swap it in without dropping requests."""
    try:
        previous, scorer = await state.reload()
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
    }


class RetrainRequest(BaseModel):
    reason: str = Field("requested over the API", min_length=1, max_length=500)


@router.post("/retrain", status_code=202)
async def retrain(
    _: AdminDep, state: StateDep, request: Request, body: RetrainRequest | None = None
) -> dict[str, object]:
    """Start a retraining in its own process (at a lower CPU priority than serving).

    The pipeline reloads this service when it promotes a new champion. 409 if one is running.
    """
    from fsml.locks import is_locked

    settings = state.settings
    if await asyncio.to_thread(is_locked, settings):
        raise HTTPException(409, detail="a retraining is already running")
    reason = (body or RetrainRequest()).reason
    log_path = settings.home / "logs" / f"retrain-{datetime.now(UTC):%Y%m%dT%H%M%S}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**settings_environ(settings), "FSML_SERVICE_URL": str(request.base_url).rstrip("/")}
    command = [
        str(Path(sys.executable).parent / "fsml"),
        "retrain",
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
