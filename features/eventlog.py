"""The offline home of pushed rows: immutable Parquet files partitioned by event date.

``<source dir>/date=YYYY-MM-DD/part-<token>.parquet``. A push first writes its rows to
``_pending/<token>.pending`` (fsynced), then applies them to Redis, then moves them into their
date partitions (one file per date, written under a temporary name, fsynced, renamed, the
directory fsynced) and only then answers. History is never rewritten; compaction can merge files
later. The pending file is the write-ahead log: a process that dies between the two stores
leaves it behind, and the next process to push to the source (or the server at start-up)
applies and publishes it, so nothing acknowledged is lost and nothing is applied twice (the
Redis side of a row is keyed by its id and the token).

Each writing process holds an exclusive ``flock`` on ``_pending/<owner>.lock`` while it lives;
the kernel releases it when the process dies, even by SIGKILL, which is how a pending file's
owner is known to be gone.
"""

from __future__ import annotations

import fcntl
import itertools
import logging
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from fsml.atomic import atomic_path, fsync_dir

log = logging.getLogger(__name__)

PENDING = "_pending"


@dataclass
class Owner:
    """This process's identity in a source's pending directory, held by a lock."""

    directory: Path
    name: str = field(default_factory=lambda: f"{os.getpid()}x{secrets.token_hex(3)}")
    _count: itertools.count = field(default_factory=lambda: itertools.count(1))
    _lock: int | None = None

    def token(self) -> str:
        if self._lock is None:
            # Locked before it has its name: another process never sees it free while we live.
            self.directory.mkdir(parents=True, exist_ok=True)
            claim = self.directory / f".{self.name}.claim"
            fd = os.open(claim, os.O_CREAT | os.O_RDWR, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.replace(claim, self.directory / f"{self.name}.lock")
            self._lock = fd
        return f"{self.name}.{next(self._count)}"


class EventLog:
    """One push source's files; ``path`` is its batch source's directory."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.pending_dir = path / PENDING
        self.owner = Owner(self.pending_dir)

    def write_pending(self, table: pa.Table) -> Path:
        """The request's rows, durable (file and name) before Redis sees them. Written under its
        final name: a torn file can only be one whose request was never answered."""
        token = self.owner.token()
        target = self.pending_dir / f"{token}.pending"
        with open(target, "wb") as handle:
            pq.write_table(table, handle, compression="zstd")
            handle.flush()
            os.fsync(handle.fileno())
        fsync_dir(self.pending_dir)
        return target

    @staticmethod
    def token(pending: Path) -> str:
        return pending.name.removesuffix(".pending")

    def publish(self, pending: Path, table: pa.Table, time_column: str, whole: bool) -> list[Path]:
        """Move the rows into their date partitions. The usual case (one date, ``whole``: the
        table is the pending file's) is a rename of the fsynced file, not fsynced again: if the
        rename were lost, the file would still be pending and recovery would publish it. Split
        or filtered rows are written and fsynced before the pending file goes."""
        token = self.token(pending)
        written = []
        if table.num_rows:
            days = pc.strftime(table[time_column], format="%Y-%m-%d")
            unique = sorted(pc.unique(days).to_pylist())
            if whole and len(unique) == 1:
                target = self.path / f"date={unique[0]}" / f"part-{token}.parquet"
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(pending, target)
                return [target]
            for day in unique:
                part = table if len(unique) == 1 else table.filter(pc.equal(days, day))
                target = self.path / f"date={day}" / f"part-{token}.parquet"
                with atomic_path(target) as tmp:
                    pq.write_table(part.replace_schema_metadata(None), tmp, compression="zstd")
                written.append(target)
        pending.unlink(missing_ok=True)
        return written

    def discard(self, pending: Path) -> None:
        pending.unlink(missing_ok=True)

    def files(self) -> list[Path]:
        """Published files, in a stable order."""
        if not self.path.is_dir():
            return []
        return sorted(self.path.glob("date=*/*.parquet"))

    def orphans(self) -> list[Path]:
        """Pending files of processes that are gone (their lock is free)."""
        if not self.pending_dir.is_dir():
            return []
        found = []
        for lock in self.pending_dir.glob("*.lock"):
            if lock.name == f"{self.owner.name}.lock" or _held(lock):
                continue
            found += sorted(self.pending_dir.glob(f"{lock.stem}.*.pending"), key=_sequence)
        return found

    def forget_owner(self, owner: str) -> None:
        """Remove a dead owner's lock file once its pending files are resolved."""
        if not any(self.pending_dir.glob(f"{owner}.*.pending")):
            (self.pending_dir / f"{owner}.lock").unlink(missing_ok=True)


def _sequence(path: Path) -> int:
    try:
        return int(path.name.removesuffix(".pending").rsplit(".", 1)[1])
    except (IndexError, ValueError):
        return 0


def _held(lock: Path) -> bool:
    try:
        fd = os.open(lock, os.O_RDWR)
    except FileNotFoundError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops the lock we may have taken
    return False


def read_pending(pending: Path) -> pa.Table:
    return pq.read_table(pending)
