"""Typed dependencies of the routes.

All are ``async def``: FastAPI runs plain ``def`` dependencies in a thread pool, and the hand-off
to a thread and back costs up to a GIL switch interval (5 ms) per request.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fsml.serving.auth import HEADER, configured_keys, key_matches, require_key
from fsml.serving.scorer import Scorer
from fsml.serving.state import ModelSlot, ServiceState

from fsml.settings import Settings


async def get_state(request: Request) -> ServiceState:
    return request.app.state.service


async def get_scorer(request: Request) -> Scorer:
    """The default model at the moment the request arrives; a reload does not change it under us."""
    slot = request.app.state.service.default
    if slot.scorer is None:
        raise HTTPException(503, detail=slot.unavailable())
    return slot.scorer


async def get_slot(request: Request, feature_service: str) -> ModelSlot:
    """A hosted model named in the path; 404 naming the hosted ones otherwise."""
    state: ServiceState = request.app.state.service
    slot = state.slots.get(feature_service)
    if slot is None:
        raise HTTPException(
            404, detail=f"feature service {feature_service!r} is not served here (served: {', '.join(state.slots)})"
        )
    return slot


require_admin = require_key("api_key")
PUSH_KEYS = ("push_api_key", "api_key")
require_push_key = require_key(*PUSH_KEYS)  # pushes: the push-only key or the admin key


def push_denied(settings: Settings, given: str | None) -> HTTPException | None:
    """What ``require_push_key`` says, for ``record: true`` on the prediction routes (which take
    no key otherwise); None when ``given`` is a push key."""
    keys = configured_keys(settings, PUSH_KEYS)
    if not keys:
        return HTTPException(401, detail="these routes are closed: set FSML_PUSH_API_KEY or FSML_API_KEY")
    if not key_matches(given, keys):
        return HTTPException(401, detail=f"missing or wrong {HEADER}")
    return None


StateDep = Annotated[ServiceState, Depends(get_state)]
ScorerDep = Annotated[Scorer, Depends(get_scorer)]
SlotDep = Annotated[ModelSlot, Depends(get_slot)]
AdminDep = Annotated[None, Depends(require_admin)]
PushKeyDep = Annotated[None, Depends(require_push_key)]
