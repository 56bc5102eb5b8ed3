"""Offline feature tables into the online store, in time chunks; window views' recent events.

Feast's ``materialize`` reads a whole time range into memory at once (feast issue 6307). Here
the range is cut into chunks written in time order: memory is bounded by one chunk, a progress
bar can follow, and Feast's Redis writes keep only the newest row per entity, so re-running any
range converges to the same state. Feast records each finished chunk in the registry; after a
failure half-way, ``incremental`` resumes from the last finished chunk of each view.

``incremental`` also refills what the store lost, which a watermark alone cannot see: a view
whose readiness marker is missing (a flushed, restarted or replaced Redis; see
``fsml.stores.redis``) is reloaded over its whole TTL window, and so is every view when the store
holds fewer of the project's keys than the last run left (evicted or deleted keys).

Window views are not rows in Redis but the recent events they aggregate at request time: those
are loaded from the pushed rows kept offline (``fsml.features.window_store.load_from_log``),
merged with what pushes already put there, so a fresh online store is complete; their marker is
set when they are loaded.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from fsml.features.sources import Repo, load_repo

from fsml.errors import FsmlError
from fsml.featurestore import open_store
from fsml.settings import Settings
from fsml.stores.redis import KEYS_FIELD, count_keys, mark_views, marker_key, read_marks, sync_client

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]  # (what, done, total)


@dataclass
class MaterializeResult:
    start: dict[str, str]  # per view: where this run started
    end: str
    chunks: int
    views: list[str] = field(default_factory=list)
    refilled: dict[str, str] = field(default_factory=dict)  # view: why it was reloaded whole
    windows: dict[str, int] = field(default_factory=dict)  # entities whose events were loaded

    def summary(self) -> dict[str, object]:
        return {
            "start": self.start,
            "end": self.end,
            "chunks": self.chunks,
            "views": self.views,
            "refilled": self.refilled,
            "window_entities": self.windows,
        }


def chunk_bounds(start: datetime, end: datetime, step: timedelta) -> list[tuple[datetime, datetime]]:
    """[start, end] cut into consecutive intervals of at most ``step``."""
    bounds, lo = [], start
    while lo < end:
        hi = min(lo + step, end)
        bounds.append((lo, hi))
        lo = hi
    return bounds


def materialize(
    settings: Settings,
    start: datetime | None = None,
    end: datetime | None = None,
    incremental: bool = False,
    progress: Progress | None = None,
    windows: bool = True,
) -> MaterializeResult:
    """Load [start, end] (default: the longest TTL before now) into the online store; with
    ``windows``, also the window views' recent events before ``end``."""
    store = open_store(settings)
    end = end or datetime.now(UTC)
    views = [v for v in store.list_feature_views() if v.online]
    client = _redis(settings)
    repo = load_repo(store) if windows else None
    window_views = [w.name for w in repo.windows] if repo else []  # always reloaded (merged) whole
    refilled = _lost(client, settings.feast_project, [v.name for v in views] + window_views) if incremental else {}
    starts = {v.name: _start(v, start, end, incremental and v.name not in refilled) for v in views}
    plan = [
        (view, lo, hi)
        for view in views
        for lo, hi in chunk_bounds(starts[view.name], end, timedelta(hours=settings.materialize_chunk_hours))
    ]
    if not plan and not incremental:
        raise FsmlError(f"empty time window: nothing to materialize up to {end.isoformat()}")
    os.environ.setdefault("TQDM_DISABLE", "1")  # our progress bar replaces Feast's
    for done, (view, lo, hi) in enumerate(plan):
        if progress:
            progress(f"{view.name} {lo:%Y-%m-%d %H:%M}", done, len(plan))
        try:
            # Feast prints a banner per call to stdout; keep stdout for results.
            with contextlib.redirect_stdout(io.StringIO()):
                store.materialize(start_date=lo, end_date=hi, feature_views=[view.name])
        except Exception as exc:  # Redis or offline store failure: say where to resume
            raise FsmlError(
                f"materialization of {view.name} failed at [{lo.isoformat()}, {hi.isoformat()}] "
                f"after {done} of {len(plan)} chunks: {type(exc).__name__}: {_line(exc)}; "
                "finished chunks are kept, re-run (or --incremental) to complete"
            ) from exc
    loaded = load_windows(settings, repo, end, progress) if repo else {}
    if progress:
        progress("done", len(plan), len(plan))
    client.hset(marker_key(settings.feast_project), KEYS_FIELD, count_keys(client, settings.feast_project))
    return MaterializeResult(
        start={k: v.isoformat() for k, v in starts.items()},
        end=end.isoformat(),
        chunks=len(plan),
        views=[v.name for v in views],
        refilled=refilled,
        windows=loaded,
    )


def _redis(settings: Settings) -> Any:
    return sync_client(settings.redis_url, settings.redis_type, socket_timeout=30)


def _lost(client: Any, project: str, views: list[str]) -> dict[str, str]:
    """Views whose rows the store may have lost since they were written, and why."""
    marks = read_marks(client, project)
    lost = {v: "no readiness marker (flushed or new Redis)" for v in views if v not in marks}
    recorded = int(marks.get(KEYS_FIELD.decode(), 0))
    if recorded and count_keys(client, project) < recorded:
        lost |= {v: f"the store holds fewer than the {recorded} keys the last run left" for v in views}
    if lost:
        log.info("reloading whole TTL windows: %s", lost)
    return lost


def missing_views(settings: Settings, views: list[str]) -> list[str]:
    """Views of ``views`` whose readiness marker is missing from the online store."""
    marks = read_marks(_redis(settings), settings.feast_project)
    return [v for v in views if v not in marks]


def refresh(settings: Settings, until: datetime) -> dict[str, object]:
    """What the scheduled loop does once a day (or each round): the offline tables brought up to
    date with what was pushed (incrementally) and the new snapshots loaded online. Window views
    need nothing: pushes keep them current."""
    from fsml.features.build import build_features

    built = build_features(settings, until=until)
    if built.mode == "unchanged":
        return {"build": built.mode, "chunks": 0}
    loaded = materialize(settings, end=until, incremental=True, windows=False)
    return {"build": built.mode, "chunks": loaded.chunks}


def load_windows(settings: Settings, repo: Repo, end: datetime, progress: Progress | None = None) -> dict[str, int]:
    """Each window view's recent events before ``end``; returns entities loaded per view."""
    import redis
    from fsml.features.eventlog import EventLog
    from fsml.features.window_store import load_from_log

    client = sync_client(settings.redis_url, settings.redis_type, socket_timeout=60)
    lateness = int(settings.window_lateness_hours * 3_600_000_000)
    loaded = {}
    try:
        for index, view in enumerate(repo.windows):
            if progress:
                progress(f"{view.name} events", index, len(repo.windows))
            files = [str(f) for f in EventLog(repo.source(view.source).path).files()]
            end_us = int(end.timestamp() * 1_000_000)
            loaded[view.name] = load_from_log(
                client, repo.project, view, files, end_us, view.longest + lateness, settings.window_max_events
            )
            mark_views(client, repo.project, {view.name: end})
    except redis.RedisError as exc:
        raise FsmlError(f"loading window events into Redis failed: {type(exc).__name__}: {_line(exc)}") from exc
    finally:
        client.close()
    return loaded


def _start(view, start: datetime | None, end: datetime, incremental: bool) -> datetime:
    ttl = view.ttl if view.ttl and view.ttl > timedelta(0) else timedelta(days=1)
    if incremental and view.most_recent_end_time is not None:
        return max(view.most_recent_end_time.astimezone(UTC), end - ttl) if start is None else start
    if start is not None and start >= end:
        raise FsmlError(f"empty time window: start {start.isoformat()} is not before end {end.isoformat()}")
    return start or end - ttl


def _line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""
