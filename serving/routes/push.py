"""``POST /v1/push/{push_source}``: rows into the offline and online stores, acknowledged only
once durable in both (``fsml.features.ingest``), and the push half of ``record: true``.

The body is ``{"rows": [...]}``, at most ``FSML_PUSH_MAX_ROWS`` rows (and ``FSML_MAX_BODY_BYTES``
bytes, which the service's body limits answer with 413 before reading the body). Every row is
checked before anything is written: one bad row refuses the request with 422 naming each bad
row and field. The answer is
``{"accepted": N, "duplicates": D}``; a row whose id was pushed before counts as a duplicate.
Redis down gives 503 with nothing written.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import orjson
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from fsml.features.rows import RowsRejected, check_rows
from fsml.serving.deps import PushKeyDep, StateDep
from fsml.serving.state import ONLINE_STORE_ERRORS, ModelSlot, ServiceState

from fsml.errors import FsmlError

router = APIRouter(tags=["push"])


@router.post("/v1/push/{push_source}")
async def push(push_source: str, request: Request, _: PushKeyDep, state: StateDep) -> JSONResponse:
    """Push rows (a JSON object ``{"rows": [...]}``) to a push source of the feature repo."""
    settings = state.settings
    ingest = state.ingestor
    if ingest is None:
        raise HTTPException(503, detail=f"push is unavailable: {state.push_error or 'starting'}")
    try:
        ingest.repo.source(push_source)
    except FsmlError as exc:
        raise HTTPException(404, detail=str(exc)) from None
    rows = _rows(await request.body(), settings.push_max_rows)
    result = await push_rows(state, push_source, rows)
    return JSONResponse(result)


def _rows(body: bytes, max_rows: int) -> list[Any]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise HTTPException(422, detail=[{"loc": ["body"], "msg": f"invalid JSON: {exc}", "type": "json"}]) from None
    rows = data.get("rows") if isinstance(data, dict) else None
    extra = sorted(set(data) - {"rows"}) if isinstance(data, dict) else []
    if not isinstance(rows, list) or extra:
        msg = f"unknown field(s) {extra}" if extra else "expected an object {'rows': [...]}"
        raise HTTPException(422, detail=[{"loc": ["body", *extra[:1]], "msg": msg, "type": "shape"}])
    if not rows:
        raise HTTPException(422, detail=[{"loc": ["body", "rows"], "msg": "no rows", "type": "too_short"}])
    if len(rows) > max_rows:
        raise HTTPException(
            413, detail=f"{len(rows)} rows in one request; FSML_PUSH_MAX_ROWS is {max_rows}: send them in parts"
        )
    return rows


def _rejected(exc: RowsRejected, single: bool = False) -> HTTPException:
    """422 in FastAPI's shape: each problem with its location (row index, field)."""
    detail = []
    for e in exc.errors:
        where = ["body"] if single else ["body", "rows", e["row"]]
        detail.append({"loc": [*where, *([e["field"]] if e["field"] else [])], "msg": e["message"], "type": "push"})
    return HTTPException(422, detail=detail)


async def push_rows(state: ServiceState, source: str, rows: list[Any]) -> dict[str, int]:
    """Push through the service's ingestor, with the push metrics and the errors as HTTP."""
    metrics = state.metrics
    began = time.perf_counter()
    try:
        result = await state.ingestor.push(source, rows)  # type: ignore[union-attr]
    except RowsRejected as exc:
        metrics.push_rejected(source, len(rows))
        raise _rejected(exc) from None
    except ONLINE_STORE_ERRORS as exc:
        state.online_store_failed(exc)
        metrics.push_rejected(source, len(rows))
        detail = f"online store unavailable ({type(exc).__name__}); nothing acknowledged, retry later"
        raise HTTPException(503, detail=detail) from None
    metrics.pushed(source, result.accepted, result.duplicates, time.perf_counter() - began, result.newest)
    return result.answer()


def recorded_rows(
    state: ServiceState, slot: ModelSlot, rows: list[dict[str, Any]], time_field: str | None, now: datetime
) -> list[Any]:
    """The rows ``record: true`` will push, checked before scoring (a bad one: 422)."""
    ingest, source = state.ingestor, slot.record_source
    if ingest is None or source is None:
        raise HTTPException(409, detail="record: this service's label source is not a push source of the repo")
    schema = ingest.repo.source(source)
    pushed = []
    for row in rows:
        values = {c: row.get(c) for c in schema.names}
        if time_field and values.get(time_field) is None and time_field in values:
            values[time_field] = now  # the request's time, as it was scored
        pushed.append(values)
    try:
        check_rows(schema, pushed, now, ingest.policy.max_future)
    except RowsRejected as exc:
        raise _rejected(exc, single=len(rows) == 1) from None
    return pushed
