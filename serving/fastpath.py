"""The prediction routes without the web framework's per-request machinery.

``PredictFastPath`` is the ASGI app uvicorn runs: it answers ``POST /v1/predict`` and
``POST /v1/predict/batch`` itself, with the same request models (validated from the raw JSON by
pydantic-core) and the same answers as the FastAPI routes, and hands every other request, and
the lifespan, to the FastAPI app. The FastAPI routes stay for the OpenAPI schema and for
``?include_values``. On two cores the FastAPI/Starlette stack costs about 320 µs of CPU for a
request that does nothing (``GET /healthz``), more than scoring itself (docs/benchmarks.md).

Only a request the fast path is sure of is answered here: a JSON content type (as FastAPI
decides it) and a body that validates. Anything else (another content type, a byte-order mark,
invalid JSON, a failed validation) goes to the FastAPI route with the body already read, so
every error answer comes from one place and both paths agree on every input by construction.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from typing import Any

import orjson
from fastapi import HTTPException
from fsml.serving.deps import no_model
from fsml.serving.limits import replay_body
from fsml.serving.routes.predict import score_rows
from pydantic import BaseModel, ValidationError

HEADERS = [(b"content-type", b"application/json")]


class PredictFastPath:
    def __init__(self, app: Any, single: type[BaseModel], batch: type[BaseModel]) -> None:
        self.app = app  # the FastAPI app: everything else, and where the service state lives
        self.validators = {"/v1/predict": single.model_validate_json, "/v1/predict/batch": batch.model_validate_json}

    async def __call__(self, scope: MutableMapping[str, Any], receive: Callable, send: Callable) -> None:
        path = scope.get("path")
        if scope["type"] != "http" or path not in self.validators or scope["method"] != "POST" or scope["query_string"]:
            await self.app(scope, receive, send)
            return
        body = await _body(receive)
        try:
            if not _json_content(scope["headers"]):
                raise ValueError("not a JSON content type")
            request = self.validators[path](body)
        except (ValidationError, ValueError):
            await self.app(scope, replay_body(body, receive), send)
            return
        state = self.app.state.service
        scorer = state.scorer
        if scorer is None:
            await _reply(send, 503, {"detail": no_model(state)})
            return
        rows = [request.model_dump()] if path == "/v1/predict" else [r.model_dump() for r in request.rows]
        try:
            predictions = await score_rows(state, scorer, rows, include_values=False)
        except HTTPException as exc:
            await _reply(send, exc.status_code, {"detail": exc.detail})
            return
        if path == "/v1/predict":
            await _reply(send, 200, predictions[0])
        else:
            await _reply(
                send, 200, {"model": predictions[0]["model"], "threshold": scorer.threshold, "predictions": predictions}
            )


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
