"""Content fingerprints of code and definitions, and the git state, for the run record."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterable
from pathlib import Path

from fsml.settings import PROJECT_ROOT

CODE_PATTERNS = ("fsml/**/*.py", "features/**/*.py", "training/**/*.py")
REPO_PATTERNS = ("**/*.py", "**/*.sql", "**/*.yaml", ".feastignore")


def tree_fingerprint(root: Path, patterns: Iterable[str]) -> str:
    """sha256 over the relative paths and bytes of the files matching ``patterns``."""
    digest = hashlib.sha256()
    files = sorted({p for pattern in patterns for p in root.glob(pattern) if p.is_file()})
    for path in files:
        if "__pycache__" in path.parts:
            continue
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def file_digest(path: Path, digest: hashlib._Hash | None = None) -> str:
    """sha256 of a file's bytes, read in 1 MiB blocks (optionally into a running digest)."""
    running = digest or hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            running.update(block)
    return running.hexdigest()


def table_digest(path: Path) -> str:
    """What a table holds: the names and sizes of its Parquet files. Parts are immutable (new
    rows come as new files), so that is enough to tell whether it changed."""
    from fsml.tables import parquet_files, table_dir

    root = table_dir(path)
    digest = hashlib.sha256()
    for name in parquet_files(path):
        where = Path(name).relative_to(root) if root.is_dir() else Path(name).name
        digest.update(f"{where}:{Path(name).stat().st_size}\n".encode())
    return digest.hexdigest()


def code_fingerprint() -> str:
    return tree_fingerprint(PROJECT_ROOT, CODE_PATTERNS)


def feature_repo_fingerprint(repo: Path) -> str:
    return tree_fingerprint(repo, REPO_PATTERNS)


def git_state(root: Path = PROJECT_ROOT) -> dict[str, str]:
    """The commit the code was at and whether the working tree had changes."""

    def git(*args: str) -> str:
        try:  # git is optional: a machine with Python and nothing else records "unknown"
            out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return out.stdout.strip() if out.returncode == 0 else ""

    commit = git("rev-parse", "HEAD")
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit or "unknown", "dirty": "true" if dirty else "false"}
