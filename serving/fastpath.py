"""The prediction routes without the web framework's per-request machinery.

``PredictFastPath`` is the ASGI app uvicorn runs: it answers every model's prediction routes
(``POST /v1/predict``, ``/v1/predict/batch`` and ``/v1/models/{feature_service}/predict[/batch]``)
itself, with the same request models (validated from the raw JSON by pydantic-core) and the same
answers as the FastAPI routes, and hands every other request, and the lifespan, to the FastAPI
app. A request finds its model, validator and kind with one dict lookup on its path, built at
start-up. The FastAPI routes stay for the OpenAPI schema and for ``?include_values``. On two
cores the FastAPI/Starlette stack costs about 320 µs of CPU for a request that does nothing
(``GET /healthz``), more than scoring itself (docs/benchmarks.md).

Only a request the fast path is sure of is answered here: a JSON content type (as FastAPI
decides it) and a body that validates. Anything else (another content type, a byte-order mark,
invalid JSON, a failed validation) goes to the FastAPI route with the body already read, so
every error answer comes from one place and both paths agree on every input by construction.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import HTTPException
from fsml.serving.deps import push_denied
from fsml.serving.limits import replay_body
from fsml.serving.routes.predict import model_paths, score_batch, score_one
from fsml.serving.state import ModelSlot
from pydantic import ValidationError

HEADERS = [(b"content-type", b"application/json")]


@dataclass(frozen=True)
class Route:
    slot: ModelSlot
    validate: Callable[[bytes], Any]
    batch: bool


def routes(slots: list[ModelSlot]) -> dict[str, Route]:
    """Every model's prediction paths; the first slot also answers the default paths."""
    found: dict[str, Route] = {}
    for index, slot in enumerate(slots):
        for default in (True, False) if index == 0 else (False,):
            single, batch = model_paths(slot, default)
            found[single] = Route(slot, slot.single.model_validate_json, False)
            found[batch] = Route(slot, slot.batch.model_validate_json, True)
    return found


class PredictFastPath:
    def __init__(self, app: Any, slots: list[ModelSlot]) -> None:
        self.app = app  # the FastAPI app: everything else, and where the service state lives
        self.routes = routes(slots)

    async def __call__(self, scope: MutableMapping[str, Any], receive: Callable, send: Callable) -> None:
        route = self.routes.get(scope.get("path"))  # type: ignore[arg-type]
        if route is None or scope["type"] != "http" or scope["method"] != "POST" or scope["query_string"]:
            await self.app(scope, receive, send)
            return
        body = await _body(receive)
        try:
            if not _json_content(scope["headers"]):
                raise ValueError("not a JSON content type")
            request = route.validate(body)
        except (ValidationError, ValueError):
            await self.app(scope, replay_body(body, receive), send)
            return
        slot = route.slot
        scorer = slot.scorer
        if scorer is None:
            await _reply(send, 503, {"detail": slot.unavailable()})
            return
        state = self.app.state.service
        record = request.record
        if record and (denied := push_denied(state.settings, _header(scope, b"x-api-key"))) is not None:
            await _reply(send, denied.status_code, {"detail": denied.detail})
            return
        try:
            if route.batch:
                rows = [r.model_dump() for r in request.rows]
                await _reply(send, 200, await score_batch(state, slot, scorer, rows, False, record))
            else:
                await _reply(send, 200, await score_one(state, slot, scorer, request.model_dump(), False, record))
        except HTTPException as exc:
            await _reply(send, exc.status_code, {"detail": exc.detail})


def _header(scope: MutableMapping[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


def _json_content(headers: list[tuple[bytes, bytes]]) -> bool:
    """FastAPI's rule: ``application/json`` or ``application/*+json``, parameters ignored."""
    for name, value in headers:
        if name == b"content-type":
            kind = value.split(b";", 1)[0].strip().lower()
            return kind == b"application/json" or (kind.startswith(b"application/") and kind.endswith(b"+json"))
    return False


async def _body(receive: Callable) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _reply(send: Callable, status: int, payload: Any) -> None:
    body = orjson.dumps(payload)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*HEADERS, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
