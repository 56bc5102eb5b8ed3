"""Typed dependencies of the routes.

All are ``async def``: FastAPI runs plain ``def`` dependencies in a thread pool, and the hand-off
to a thread and back costs up to a GIL switch interval (5 ms) per request.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader
from fsml.serving.scorer import Scorer
from fsml.serving.state import ServiceState


async def get_state(request: Request) -> ServiceState:
    return request.app.state.service


async def get_scorer(request: Request) -> Scorer:
    """The model at the moment the request arrives; a reload does not change it under us."""
    state: ServiceState = request.app.state.service
    if state.scorer is None:
        raise HTTPException(503, detail=f"no model loaded: {state.load_error or 'loading'}")
    return state.scorer


# Declared as an API-key security scheme, so the OpenAPI document and Swagger's "Authorize" know it.
API_KEY_HEADER = APIKeyHeader(name="X-API-Key", auto_error=False, description="FSML_API_KEY; admin routes only.")


async def require_admin(request: Request, x_api_key: Annotated[str | None, Security(API_KEY_HEADER)] = None) -> None:
    key = request.app.state.service.settings.api_key
    if key is None:
        raise HTTPException(401, detail="admin routes are disabled: set FSML_API_KEY")
    if x_api_key is None or not secrets.compare_digest(x_api_key, key.get_secret_value()):
        raise HTTPException(401, detail="missing or wrong X-API-Key")


StateDep = Annotated[ServiceState, Depends(get_state)]
ScorerDep = Annotated[Scorer, Depends(get_scorer)]
AdminDep = Annotated[None, Depends(require_admin)]
