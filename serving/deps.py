"""Typed dependencies of the routes.

All are ``async def``: FastAPI runs plain ``def`` dependencies in a thread pool, and the hand-off
to a thread and back costs up to a GIL switch interval (5 ms) per request.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request
from fsml.serving.scorer import Scorer
from fsml.serving.state import ServiceState

from fsml.settings import Settings


async def get_state(request: Request) -> ServiceState:
    return request.app.state.service


async def get_scorer(request: Request) -> Scorer:
    """The model at the moment the request arrives; a reload does not change it under us."""
    state: ServiceState = request.app.state.service
    if state.scorer is None:
        raise HTTPException(503, detail=f"no model loaded: {state.load_error or 'loading'}")
    return state.scorer


async def require_admin(request: Request, x_api_key: Annotated[str | None, Header(alias="X-API-Key")] = None) -> None:
    key = request.app.state.service.settings.api_key
    if key is None:
        raise HTTPException(401, detail="admin routes are disabled: set FSML_API_KEY")
    if x_api_key is None or not secrets.compare_digest(x_api_key, key.get_secret_value()):
        raise HTTPException(401, detail="missing or wrong X-API-Key")


def _same(given: str | None, expected: str | None) -> bool:
    """Constant-time comparison of the bytes; an empty or blank key is no key."""
    if not given or not given.strip() or not expected or not expected.strip():
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


def push_denied(settings: Settings, given: str | None) -> HTTPException | None:
    """Pushes (and ``record: true``) take the push-only key (FSML_PUSH_API_KEY) or the admin
    key; None when ``given`` is one of them."""
    keys = [k.get_secret_value() for k in (settings.push_api_key, settings.api_key) if k is not None]
    keys = [k for k in keys if k.strip()]
    if not keys:
        return HTTPException(401, detail="push is disabled: set FSML_PUSH_API_KEY (or FSML_API_KEY)")
    if not any([_same(given, k) for k in keys]):  # every key compared: no early exit
        return HTTPException(401, detail="missing or wrong X-API-Key")
    return None


async def require_push_key(
    request: Request, x_api_key: Annotated[str | None, Header(alias="X-API-Key")] = None
) -> None:
    denied = push_denied(request.app.state.service.settings, x_api_key)
    if denied is not None:
        raise denied


StateDep = Annotated[ServiceState, Depends(get_state)]
ScorerDep = Annotated[Scorer, Depends(get_scorer)]
AdminDep = Annotated[None, Depends(require_admin)]
PushKeyDep = Annotated[None, Depends(require_push_key)]
