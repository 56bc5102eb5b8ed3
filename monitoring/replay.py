"""``fsml replay``: the generated transactions of some days, sent to the service as live traffic.

The online store is moved forward with the transactions' own clock: before a transaction at
time t is sent, every feature row with a timestamp at or before t has been written, and none
after it, so each request sees the features it would have seen live (the same rows a
point-in-time join would pick). Requests keep their ids and timestamps, so the prediction log
can be joined to the labels once they mature.

The replay starts by deleting the environment's online rows (the store cannot be moved back in
time otherwise), so it refuses to run in ``prod``.

A request's features depend only on the rows of its own entities. Rows of views keyed by the
first entity key alone (customers) matter to that customer only, so the replay goes in waves:
every customer's next transaction, after that customer's rows up to its time are written, sent
together through ``/v1/predict/batch``. Rows of other views (merchant snapshots) are written at
barriers, once every transaction before them has been sent.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import httpx
import pyarrow as pa
from fsml.examples.fraud.synthetic import load_meta
from fsml.serving.materialize import materialize
from fsml.serving.online_writer import OnlineWriter, Row

from fsml.errors import FsmlError
from fsml.featurestore import ServiceSpec, describe_service, open_store
from fsml.settings import Settings

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]


@dataclass
class Entity:
    """One entity of the lane key (a customer): its feature rows and requests, in time order."""

    rows: deque = field(default_factory=deque)  # (time us, view, Feast row)
    requests: deque = field(default_factory=deque)  # (time us, request)


@dataclass
class Tally:
    sent: int = 0
    failed: int = 0
    versions: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)


def replay(
    settings: Settings,
    from_day: int,
    to_day: int | None = None,
    url: str = "http://127.0.0.1:8000",
    batch: int = 500,
    progress: Progress | None = None,
) -> dict[str, Any]:
    meta = load_meta(settings.raw_dir)
    start = datetime.fromisoformat(meta["start"])
    days = int(meta["generator"]["days"])
    to_day = days if to_day is None else to_day
    if not 0 <= from_day < to_day <= days:
        raise FsmlError(f"days must satisfy 0 <= --from-day < --to-day <= {days}; got {from_day}, {to_day}")
    if settings.env == "prod":
        raise FsmlError("replay rewinds the online store; it does not run with FSML_ENV=prod")
    begin, end = start + timedelta(days=from_day), start + timedelta(days=to_day)
    spec = describe_service(open_store(settings), settings.feature_service)
    note = progress or (lambda *_: None)
    note("rewinding the online store to the first day", 0, 1)
    OnlineWriter(settings).reset()
    materialize(settings, end=begin)
    began = time.perf_counter()
    tally = asyncio.run(_run(settings, spec, begin, end, url, batch, note))
    seconds = time.perf_counter() - began
    return {
        "from": begin.isoformat(),
        "to": end.isoformat(),
        "sent": tally.sent,
        "failed": tally.failed,
        "model_versions": dict(sorted(tally.versions.items())),
        "errors": dict(tally.errors),
        "seconds": round(seconds, 2),
        "requests_per_second": round(tally.sent / seconds, 1) if seconds else 0.0,
    }


def _us(value: datetime) -> int:
    return int(value.timestamp() * 1_000_000)


async def _run(
    settings: Settings, spec: ServiceSpec, begin: datetime, end: datetime, url: str, batch: int, note: Progress
) -> Tally:
    writer = OnlineWriter(settings)
    key = spec.join_keys[0]
    local_views = [v for v, view in writer.views.items() if view.join_keys == [key] and v in spec.ttl_seconds]
    global_views = [v for v in writer.views if v in spec.ttl_seconds and v not in local_views]
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    transactions = _transactions(con, spec, begin, end)
    if not transactions:
        raise FsmlError(f"no transactions between {begin.isoformat()} and {end.isoformat()}")
    rows = {v: _rows(con, spec, v, begin, end) for v in (*local_views, *global_views)}
    protos = {v: writer.protos(v, table) for v, table in rows.items()}

    barriers: dict[int, list[tuple[str, Row]]] = {}
    for view in global_views:
        for t, proto in zip(rows[view]["event_timestamp"].to_pylist(), protos[view], strict=True):
            barriers.setdefault(_us(t), []).append((view, proto))
    entities: dict[Any, Entity] = {}
    events = []
    for view in local_views:
        keys, times = rows[view][key].to_pylist(), rows[view]["event_timestamp"].to_pylist()
        events += [(_us(t), 0, k, (view, proto)) for k, t, proto in zip(keys, times, protos[view], strict=True)]
    for request in transactions:
        moment = next(v for v in request.values() if isinstance(v, datetime))
        events.append((_us(moment), 1, request[key], request))
    for t, kind, k, payload in sorted(events, key=lambda e: (e[0], e[1])):
        entity = entities.setdefault(k, Entity())
        (entity.rows if kind == 0 else entity.requests).append((t, *payload) if kind == 0 else (t, payload))

    tally = Tally()
    edges = [_us(begin), *[c for c in sorted(barriers) if c > _us(begin)], _us(end) + 1]
    limits = httpx.Limits(max_connections=4, max_keepalive_connections=4)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        for index, (lo, hi) in enumerate(itertools.pairwise(edges)):
            note(f"{datetime.fromtimestamp(lo / 1e6, tz=UTC):%Y-%m-%d %H:%M}", index, len(edges) - 1)
            for view, proto in barriers.get(lo, []):
                await writer.write(view, [proto])
            await _segment(writer, client, entities, hi, batch, tally)
    note("done", len(edges) - 1, len(edges) - 1)
    return tally


async def _segment(
    writer: OnlineWriter, client: httpx.AsyncClient, entities: dict[Any, Entity], until: int, batch: int, tally: Tally
) -> None:
    """Waves until ``until``: each entity's next request, after its rows up to that request's
    time are written; the wave goes to the service in batches. Then the rows left before ``until``."""
    while True:
        writes: dict[str, list[Row]] = {}
        wave = []
        for entity in entities.values():
            if entity.requests and entity.requests[0][0] < until:
                moment, request = entity.requests.popleft()
                while entity.rows and entity.rows[0][0] <= moment:
                    _, view, proto = entity.rows.popleft()
                    writes.setdefault(view, []).append(proto)
                wave.append(request)
        if not wave:
            break
        for view, protos in writes.items():
            await writer.write(view, protos)
        chunks = [wave[i : i + batch] for i in range(0, len(wave), batch)]
        await asyncio.gather(*(_send(client, chunk, tally) for chunk in chunks))
    writes = {}
    for entity in entities.values():
        while entity.rows and entity.rows[0][0] < until:
            _, view, proto = entity.rows.popleft()
            writes.setdefault(view, []).append(proto)
    for view, protos in writes.items():
        await writer.write(view, protos)


async def _send(client: httpx.AsyncClient, requests: list[dict[str, Any]], tally: Tally) -> None:
    rows = [{k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in r.items()} for r in requests]
    tally.sent += len(rows)
    try:
        reply = await client.post("/v1/predict/batch", json={"rows": rows})
    except httpx.HTTPError as exc:
        tally.failed += len(rows)
        tally.errors[type(exc).__name__] += len(rows)
        return
    if reply.status_code != 200:
        tally.failed += len(rows)
        tally.errors[str(reply.status_code)] += len(rows)
        return
    for prediction in reply.json()["predictions"]:
        tally.versions[prediction["model"]["version"]] += 1


def _transactions(con: duckdb.DuckDBPyConnection, spec: ServiceSpec, begin: datetime, end: datetime) -> list[dict]:
    src = spec.label_source
    times = [i.name for i in spec.inputs if i.kind == "request" and i.dtype == "timestamp"]
    fields = [i.name for i in spec.inputs if i.name not in times]
    columns = ", ".join([f'"{src.id}"', *(f'"{c}"' for c in fields if c != src.id)])
    columns += f', "{src.timestamp}" AS "{times[0] if times else "timestamp"}"'
    query = (
        f'SELECT {columns} FROM read_parquet(?) WHERE "{src.timestamp}" >= ? AND "{src.timestamp}" < ? '
        f'ORDER BY "{src.timestamp}", "{src.id}"'
    )
    return con.sql(query, params=[str(src.path), begin, end]).to_arrow_table().to_pylist()


def _rows(con: duckdb.DuckDBPyConnection, spec: ServiceSpec, view: str, begin: datetime, end: datetime) -> pa.Table:
    query = "SELECT * FROM read_parquet(?) WHERE event_timestamp > ? AND event_timestamp < ? ORDER BY event_timestamp"
    return con.sql(query, params=[str(spec.offline_paths[view]), begin, end]).to_arrow_table()
