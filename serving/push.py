"""Ingestion as the service and the CLI run it: the feature pipeline's ``Ingestor`` on the
serving Redis client, with the limits of the settings, and files pushed in chunks."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from fsml.features.ingest import Ingestor, Policy
from fsml.features.sources import Repo, load_repo
from fsml.serving.redis_client import RedisClient
from fsml.serving.redis_cluster import ClusterClient, online_client

from fsml.errors import FsmlError
from fsml.featurestore import open_store
from fsml.settings import Settings

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]


def policy(settings: Settings) -> Policy:
    return Policy(
        max_future=timedelta(seconds=settings.push_max_future_seconds),
        lateness=timedelta(hours=settings.window_lateness_hours),
        max_events=settings.window_max_events,
        apply_rows=settings.push_apply_rows,
    )


def ingestor(
    settings: Settings, redis: RedisClient | ClusterClient, store: Any | None = None, repo: Repo | None = None
) -> Ingestor:
    """Reads the registry once: the push schemas and window views of the repo."""
    return Ingestor(repo or load_repo(store or open_store(settings)), redis, policy(settings))


def read_rows(path: Path) -> pa.Table:
    """A Parquet or CSV file of rows to push."""
    if not path.is_file():
        raise FsmlError(f"no input file {path}")
    try:
        if path.suffix.lower() == ".csv":
            return pacsv.read_csv(path)
        return pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise FsmlError(f"cannot read {path}: {str(exc).splitlines()[0]}") from None


def push_file(
    settings: Settings,
    source: str,
    path: Path,
    offline: bool = False,
    chunk_rows: int | None = None,
    progress: Progress | None = None,
    before: datetime | None = None,
) -> dict[str, Any]:
    """Push a file through the same code as ``POST /v1/push/{source}``, a chunk at a time.

    Each chunk is its own request: a bad chunk stops the run with the rows before it pushed,
    so running the same command again after fixing the file pushes the rest (the rows already
    pushed come back as duplicates). ``offline`` writes the offline store only (a backfill);
    ``fsml features materialize`` then loads what the online store needs. ``before`` keeps the
    rows whose event time is earlier (a file that runs ahead of the clock, such as a replay's).
    """
    repo = load_repo(open_store(settings))
    time_column = repo.source(source).timestamp  # an unknown source is named before any reading
    table = read_rows(path)
    if before is not None:
        if time_column not in table.column_names:
            raise FsmlError(f"{path} has no column {time_column!r}, the event time of {source!r}")
        times = pc.cast(table[time_column], pa.timestamp("us", tz="UTC"))
        table = table.filter(pc.less(times, pa.scalar(before, pa.timestamp("us", tz="UTC"))))
    size = min(chunk_rows or settings.push_max_rows, settings.push_max_rows)
    return asyncio.run(_push_chunks(settings, repo, source, table, offline, size, progress or (lambda *_: None)))


async def _push_chunks(
    settings: Settings, repo: Repo, source: str, table: pa.Table, offline: bool, size: int, note: Progress
) -> dict[str, Any]:
    redis = online_client(settings, timeout_ms=settings.push_timeout_ms, connections=1)
    try:
        ingest = ingestor(settings, redis, repo=repo)
        recovered = await ingest.recover()
        accepted = duplicates = 0
        for start in range(0, table.num_rows, size):
            note(f"{source}: rows {start:,}-{min(start + size, table.num_rows):,}", start, table.num_rows)
            rows = table.slice(start, size).to_pylist()
            result = await ingest.push(source, rows, online=not offline)
            accepted, duplicates = accepted + result.accepted, duplicates + result.duplicates
        note("done", table.num_rows, table.num_rows)
    finally:
        await redis.aclose()
    return {"source": source, "rows": table.num_rows, "accepted": accepted, "duplicates": duplicates,
            "recovered_files": recovered, "offline_only": offline}  # fmt: skip
