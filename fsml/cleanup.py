"""Temporary and stage files left by killed jobs, removed by the next job that writes there.

Every temporary name fsml writes (``fsml.atomic``) carries its writer: ``<pid>@<host>``. A
leftover is removed when its writer is a process of this host that no longer runs; a leftover
of another host (a container sharing the volume, whose processes this one cannot see), or one
without a writer in its name, only once it is older than ``UNOWNED_AFTER``. A job that is still
writing is never touched.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import time
from collections.abc import Iterable
from functools import cache
from pathlib import Path

log = logging.getLogger(__name__)

PATTERNS = (".stage-*", ".*.tmp", ".*.link")
UNOWNED_AFTER = 3600.0  # seconds
_OWNER = re.compile(r"(\d+)@([A-Za-z0-9]+)")


@cache
def host() -> str:
    return re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:32] or "host"


def owner_tag() -> str:
    """``<pid>@<host>``: put in every temporary name so a later job can tell if its writer lives."""
    return f"{os.getpid()}@{host()}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def owner_gone(text: str, since: float) -> bool:
    """Whether the writer named in ``text`` (an owner tag, or a name holding one) has ended;
    ``since`` (epoch seconds) dates the work, for writers this host cannot see."""
    found = _OWNER.search(text)
    if found and found.group(2) == host():
        return int(found.group(1)) != os.getpid() and not _alive(int(found.group(1)))
    return time.time() - since > UNOWNED_AFTER


def is_stale(path: Path) -> bool:
    try:
        return owner_gone(path.name, path.lstat().st_mtime)
    except FileNotFoundError:
        return False


def remove_stale(directory: Path, patterns: Iterable[str] = PATTERNS, recursive: bool = False) -> list[Path]:
    """Remove the stale leftovers matching ``patterns`` in ``directory``; returns what went."""
    if not directory.is_dir():
        return []
    removed = []
    for pattern in patterns:
        for path in directory.rglob(pattern) if recursive else directory.glob(pattern):
            if not is_stale(path):
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(path)
    if removed:
        log.info("removed %d leftovers of killed jobs in %s", len(removed), directory)
    return removed
