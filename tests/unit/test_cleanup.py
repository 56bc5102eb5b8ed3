"""Leftovers of killed jobs: removed by the next writer, never while their writer runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from fsml.atomic import atomic_path, staged_dir
from fsml.cleanup import host, owner_tag, remove_stale

KILLED_WRITER = (
    "import sys, time\n"
    "from pathlib import Path\n"
    "from fsml.atomic import atomic_path, staged_dir\n"
    "with staged_dir(Path(sys.argv[1])) as stage, atomic_path(Path(sys.argv[2])) as tmp:\n"
    "    (stage / 'part.parquet').write_text('half')\n"
    "    tmp.write_text('half')\n"
    "    print('writing', flush=True)\n"
    "    time.sleep(60)\n"
)


def _killed_mid_write(target_dir: Path, target_file: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(target_dir), str(target_file)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout.readline().strip() == "writing"
    child.send_signal(signal.SIGKILL)
    child.wait()


def test_the_next_run_removes_what_a_sigkill_left(tmp_path: Path) -> None:
    tables, scored = tmp_path / "features", tmp_path / "out" / "scored.parquet"
    _killed_mid_write(tables, scored)
    assert list((tmp_path / "features.versions").glob(".stage-*")) and list(scored.parent.glob(".*.tmp"))
    with staged_dir(tables) as stage:
        (stage / "t.parquet").write_text("ok")
    with atomic_path(scored) as tmp:
        tmp.write_text("ok")
    assert [p.name for p in (tmp_path / "features.versions").iterdir() if p.name.startswith(".")] == []
    assert [p.name for p in scored.parent.iterdir()] == ["scored.parquet"]
    assert (tables / "t.parquet").read_text() == "ok"


def test_a_running_writers_files_are_kept(tmp_path: Path) -> None:
    mine = tmp_path / f".x.parquet.{owner_tag()}.0000.tmp"
    mine.write_text("in progress")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        alive = tmp_path / f".stage-{sleeper.pid}@{host()}-abc"
        alive.mkdir()
        foreign = tmp_path / ".y.parquet.12@elsewhere.0000.tmp"  # another container's process
        foreign.write_text("?")
        unowned_old = tmp_path / ".z.parquet.0000.tmp"
        unowned_old.write_text("?")
        os.utime(unowned_old, (time.time() - 7200, time.time() - 7200))
        removed = remove_stale(tmp_path)
        assert removed == [unowned_old]
        assert mine.exists() and alive.exists() and foreign.exists()
    finally:
        sleeper.kill()
        sleeper.wait()
    assert remove_stale(tmp_path) == [alive]  # its writer is gone now
