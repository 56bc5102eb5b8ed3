"""A process's first pushes can arrive together: their pending files are written from worker
threads, and only one of them may take the owner's lock."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from fsml.features.eventlog import Owner


def test_concurrent_first_tokens_share_one_lock(tmp_path: Path) -> None:
    for attempt in range(20):
        owner = Owner(tmp_path / str(attempt))
        with ThreadPoolExecutor(8) as pool:
            tokens = list(pool.map(lambda _: owner.token(), range(16)))
        assert len(set(tokens)) == 16
        assert [p.name for p in owner.directory.iterdir()] == [f"{owner.name}.lock"]
