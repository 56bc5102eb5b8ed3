"""Process-wide exclusive locks on files: one retraining at a time, across every fsml process.

In the base package because the service (which starts retrainings) and the monitor (which runs
them) both need it, and neither may import the other.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from datetime import UTC, datetime

from fsml.errors import FsmlError
from fsml.settings import Settings


class RetrainBusy(FsmlError):
    exit_code = 3


@contextlib.contextmanager
def retrain_lock(settings: Settings) -> Iterator[None]:
    """Exclusive across processes; released by the kernel even if the holder crashes."""
    settings.monitoring_dir.mkdir(parents=True, exist_ok=True)
    path = settings.monitoring_dir / "retrain.lock"
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise RetrainBusy(f"a retraining is already running ({holder})") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} since {datetime.now(UTC).isoformat(timespec='seconds')}")
        handle.flush()
        try:
            yield
        finally:
            handle.truncate(0)
            fcntl.flock(handle, fcntl.LOCK_UN)


def is_locked(settings: Settings) -> bool:
    try:
        with retrain_lock(settings):
            return False
    except RetrainBusy:
        return True
