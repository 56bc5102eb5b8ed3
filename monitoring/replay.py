"""``fsml replay``: rows of a file sent to the service as live traffic, on the real path.

Every row is scored and recorded in one call (``POST /v1/predict/batch`` with
``"record": true``), so each request sees the window features of everything sent before it, as
a live application's would, and the pushed rows land in both stores. Labels are pushed
(``POST /v1/push/<labels source>``) as they mature on the replay's clock. At each day boundary
the replay does what the scheduled loop does once a day: an incremental ``features build`` and a
``materialize`` of the snapshot views (profiles, merchant risk), from the pushed data. Nothing
is written into Redis except through the service and those two steps.

The rows are those of the service's label source (a push source) and its labels source, read
from files with their columns (by default ``data/raw/<source>.parquet``, what the example's
generator writes). A request is scored on the features before it and recorded after, so rows
that share an entity of a window view go in separate requests: the replay sends waves, each with
at most one row per entity, in time order between day boundaries.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.compute as pc
from fsml.features.sources import Repo, load_repo
from fsml.serving.materialize import refresh
from fsml.serving.push import read_rows

from fsml.errors import FsmlError
from fsml.featurestore import describe_service, open_store
from fsml.settings import Settings

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]
DAY = timedelta(days=1)


@dataclass
class Tally:
    sent: int = 0
    failed: int = 0
    recorded: int = 0
    labels: int = 0
    refreshes: int = 0
    versions: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)


def replay(
    settings: Settings,
    start: datetime,
    end: datetime,
    url: str = "http://127.0.0.1:8000",
    batch: int = 500,
    progress: Progress | None = None,
    rows_file: Path | None = None,
    labels_file: Path | None = None,
    labels_until: datetime | None = None,
) -> dict[str, Any]:
    """Send the rows with ``start <= time < end``; push the labels that become known in
    ``[start, labels_until)`` (default ``end``) as the clock reaches them."""
    if start >= end:
        raise FsmlError(f"empty replay window: {start.isoformat()} is not before {end.isoformat()}")
    store = open_store(settings)
    repo = load_repo(store)
    source = describe_service(store, settings.feature_service).label_source
    rows_schema = repo.source(source.name)
    labels_name = rows_schema.tag("fsml.labels")
    rows = _read(rows_file or settings.raw_dir / f"{source.name}.parquet", rows_schema.timestamp, start, end)
    if not rows:
        raise FsmlError(f"no {source.name} rows between {start.isoformat()} and {end.isoformat()}")
    labels: list[dict[str, Any]] = []
    if labels_name:
        at = repo.source(labels_name).timestamp
        labels = _read(labels_file or settings.raw_dir / f"{labels_name}.parquet", at, start, labels_until or end)
    note = progress or (lambda *_: None)
    began = time.perf_counter()
    tally = asyncio.run(_run(settings, repo, source.name, labels_name, rows, labels, start, end, url, batch, note))
    seconds = time.perf_counter() - began
    return {
        "from": start.isoformat(),
        "to": end.isoformat(),
        "sent": tally.sent,
        "failed": tally.failed,
        "recorded": tally.recorded,
        "labels_pushed": tally.labels,
        "daily_refreshes": tally.refreshes,
        "model_versions": dict(sorted(tally.versions.items())),
        "errors": dict(tally.errors),
        "seconds": round(seconds, 2),
        "requests_per_second": round(tally.sent / seconds, 1) if seconds else 0.0,
    }


def _read(path: Path, time_column: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
    table = read_rows(path)
    times = pc.cast(table[time_column], pa.timestamp("us", tz="UTC"))
    stamp = pa.timestamp("us", tz="UTC")
    keep = pc.and_(pc.greater_equal(times, pa.scalar(start, stamp)), pc.less(times, pa.scalar(end, stamp)))
    table = table.filter(keep)
    table = table.set_column(table.column_names.index(time_column), time_column, times.filter(keep))
    return table.sort_by(time_column).to_pylist()


async def _run(
    settings: Settings, repo: Repo, source: str, labels_source: str | None, rows: list[dict[str, Any]],
    labels: list[dict[str, Any]], start: datetime, end: datetime, url: str, batch: int, note: Progress,
) -> Tally:  # fmt: skip
    schema = repo.source(source)
    entity_keys = [tuple(w.join_keys) for w in schema.windows] or [()]
    label_time = repo.source(labels_source).timestamp if labels_source else ""
    pending, matured = deque(rows), deque(labels)
    tally = Tally()
    key = settings.push_api_key or settings.api_key
    headers = {"X-API-Key": key.get_secret_value()} if key else {}
    first = datetime.combine(start.date(), datetime.min.time(), tzinfo=start.tzinfo)
    barriers = [first + DAY * i for i in range(1, (end - first) // DAY + 2)]
    limits = httpx.Limits(max_connections=4, max_keepalive_connections=4)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits, headers=headers) as client:
        for index, barrier in enumerate(barriers):
            note(f"{barrier - DAY:%Y-%m-%d}", index, len(barriers))
            day = []
            while pending and pending[0][schema.timestamp] < barrier:
                day.append(pending.popleft())
            for wave in _waves(day, entity_keys):
                chunks = [wave[i : i + batch] for i in range(0, len(wave), batch)]
                await asyncio.gather(*(_send(client, chunk, tally) for chunk in chunks))
            due = []
            while matured and matured[0][label_time] < min(barrier, end):
                due.append(matured.popleft())
            await _push_labels(client, labels_source, due, tally)
            if barrier <= end:
                await asyncio.to_thread(refresh, settings, barrier)
                tally.refreshes += 1
        await _push_labels(client, labels_source, list(matured), tally)  # labels that mature after the rows
    note("done", len(barriers), len(barriers))
    return tally


def _waves(rows: list[dict[str, Any]], entity_keys: list[tuple[str, ...]]) -> list[list[dict[str, Any]]]:
    """Rows in time order, split so that no two rows of a request share an entity."""
    waves: list[list[dict[str, Any]]] = []
    busy: list[set] = []
    for row in rows:
        marks = [(keys, tuple(row[k] for k in keys)) for keys in entity_keys]
        level = 0
        for index, taken in enumerate(busy):  # after the last wave holding one of its entities
            if any(m in taken for m in marks):
                level = index + 1
        if level == len(waves):
            waves.append([])
            busy.append(set())
        waves[level].append(row)
        busy[level].update(marks)
    return waves


def _json(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}


async def _send(client: httpx.AsyncClient, rows: list[dict[str, Any]], tally: Tally, attempts: int = 3) -> None:
    """One request; a 503 or a lost connection is retried, as an application would: recording
    is idempotent, so a row that did land the first time comes back as a duplicate."""
    tally.sent += len(rows)
    body = {"rows": [_json(r) for r in rows], "record": True}
    for attempt in range(attempts):
        problem = ""
        try:
            reply = await client.post("/v1/predict/batch", json=body)
            if reply.status_code == 200:
                break
            problem = str(reply.status_code)
            if reply.status_code != 503:
                break
        except httpx.HTTPError as exc:
            problem = type(exc).__name__
        log.warning("replay request failed (%s), attempt %d of %d", problem, attempt + 1, attempts)
        await asyncio.sleep(0.5 * 2**attempt)
    if problem:
        tally.failed += len(rows)
        tally.errors[problem] += len(rows)
        return
    body = reply.json()
    tally.recorded += body.get("recorded", {}).get("accepted", 0)
    for prediction in body["predictions"]:
        tally.versions[prediction["model"]["version"]] += 1


async def _push_labels(client: httpx.AsyncClient, source: str | None, rows: list[dict[str, Any]], tally: Tally) -> None:
    for start in range(0, len(rows), 5_000):
        part = rows[start : start + 5_000]
        reply = await client.post(f"/v1/push/{source}", json={"rows": [_json(r) for r in part]})
        if reply.status_code != 200:
            raise FsmlError(f"pushing labels failed ({reply.status_code}): {reply.text[:300]}")
        tally.labels += reply.json()["accepted"]
