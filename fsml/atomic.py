"""Writes that are all-or-nothing: readers see the old state or the new one, never a mix.

Files are written to a temporary sibling and renamed into place. Directories of several files
that must change together are published as versions behind a symbolic link that is replaced
atomically, so a crash half-way leaves the previous version in place.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from fsml.cleanup import owner_tag, remove_stale


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(target: Path, clean: bool = True) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; it replaces ``target`` only on success.

    With ``clean``, leftovers of killed writers of the same target are removed first
    (``fsml.cleanup``); writers of many files in one folder clean once instead."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if clean:
        remove_stale(target.parent, [f".{glob.escape(target.name)}.*.tmp"])
    tmp = target.with_name(f".{target.name}.{owner_tag()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield tmp
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
        fsync_dir(target.parent)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(target: Path, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text)


@contextlib.contextmanager
def staged_dir(target: Path) -> Iterator[Path]:
    """Yield an empty staging directory that becomes the content of ``target`` on success.

    ``target`` is a symbolic link to ``<target>.versions/<id>``; the link is swapped with one
    ``rename``, then older versions are removed. On failure the staging directory is deleted and
    ``target`` still points where it did.
    """
    versions = target.with_name(f"{target.name}.versions")
    versions.mkdir(parents=True, exist_ok=True)
    if target.exists() and not target.is_symlink():
        raise FileExistsError(f"{target} is a real directory; expected a published version link")
    remove_stale(versions)
    remove_stale(target.parent, [f".{glob.escape(target.name)}.*.link"])
    stage = Path(tempfile.mkdtemp(prefix=f".stage-{owner_tag()}-", dir=versions))
    try:
        yield stage
        for path in sorted(stage.rglob("*"), reverse=True):  # files before their folders
            if path.is_dir():
                fsync_dir(path)
            else:
                with open(path, "rb") as handle:
                    os.fsync(handle.fileno())
        final = versions / uuid.uuid4().hex[:12]
        stage.rename(final)
        link = target.with_name(f".{target.name}.{owner_tag()}.{uuid.uuid4().hex[:8]}.link")
        link.symlink_to(final.relative_to(target.parent))
        os.replace(link, target)
        fsync_dir(target.parent)
        _remove_other_versions(versions, keep=final)
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)


def _remove_other_versions(versions: Path, keep: Path) -> None:
    for old in versions.iterdir():
        if old != keep and not old.name.startswith(".stage-"):
            shutil.rmtree(old, ignore_errors=True)
