"""Typed dependencies of the routes.

All are ``async def``: FastAPI runs plain ``def`` dependencies in a thread pool, and the hand-off
to a thread and back costs up to a GIL switch interval (5 ms) per request.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fsml.serving.auth import require_key
from fsml.serving.errors import public_reason
from fsml.serving.scorer import Scorer
from fsml.serving.state import ServiceState


async def get_state(request: Request) -> ServiceState:
    return request.app.state.service


async def get_scorer(request: Request) -> Scorer:
    """The model at the moment the request arrives; a reload does not change it under us."""
    state: ServiceState = request.app.state.service
    if state.scorer is None:
        raise HTTPException(503, detail=no_model(state))
    return state.scorer


def no_model(state: ServiceState) -> str:
    """Why there is no model, without the file paths the full reason (in the log) may hold."""
    return f"no model loaded: {public_reason(state.load_error) if state.load_error else 'loading'}"


require_admin = require_key("api_key")

StateDep = Annotated[ServiceState, Depends(get_state)]
ScorerDep = Annotated[Scorer, Depends(get_scorer)]
AdminDep = Annotated[None, Depends(require_admin)]
