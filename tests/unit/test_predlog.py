"""The prediction log: partitioned, bounded, durable on shutdown, resilient to disk errors."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from fsml.serving.predlog import PredictionLog

T0 = datetime(2026, 10, 1, 13, 59, tzinfo=UTC)


def _log(directory: Path, **kwargs) -> PredictionLog:
    return PredictionLog(directory, {"v__x": "float", "v__c": "string"}, {"customer_id": "int"}, "order_id", **kwargs)


def _append(log: PredictionLog, n: int, start: datetime = T0) -> None:
    for i in range(n):
        log.append(
            start + timedelta(seconds=30 * i),
            {"order_id": i, "customer_id": i},
            {"v__x": float(i), "v__c": "a"},
            [],
            ["v__c"] if i % 2 else [],
            0.5,
            "m",
            "1",
        )


def test_rows_land_in_hour_partitions_with_their_types(tmp_path: Path) -> None:
    log = _log(tmp_path)
    _append(log, 6)  # 13:59:00 to 14:01:30
    assert log.flush() == 6
    files = sorted(p.relative_to(tmp_path).parent.as_posix() for p in tmp_path.rglob("*.parquet"))
    assert files == ["date=2026-10-01/hour=13", "date=2026-10-01/hour=14"]
    rows = duckdb.sql(f"SELECT * FROM read_parquet('{tmp_path}/**/*.parquet') ORDER BY order_id").df()
    assert list(rows["order_id"]) == [str(i) for i in range(6)]
    assert rows["v__x"].dtype == "float64" and rows["stale"][1].tolist() == ["v__c"]
    assert not list(tmp_path.rglob("*.tmp"))


def test_buffer_is_bounded_and_counts_drops(tmp_path: Path) -> None:
    dropped = []
    log = _log(tmp_path, max_rows=10, on_drop=dropped.append)
    _append(log, 15)
    assert len(dropped) == 5
    log.close()  # never started: close still writes what is buffered
    assert _count(tmp_path) == 10


def test_rows_wait_in_memory_while_the_disk_fails(tmp_path: Path) -> None:
    blocked = tmp_path / "logs"
    blocked.write_text("a file where the directory should be")
    log = _log(blocked)
    _append(log, 3)
    with pytest.raises(OSError):
        log.flush()
    blocked.unlink()
    assert log.flush() == 3  # nothing was lost


def test_writer_thread_flushes_and_close_drains(tmp_path: Path) -> None:
    log = _log(tmp_path, flush_seconds=0.05).start()
    _append(log, 4)
    log.close()
    assert _count(tmp_path) == 4


def _count(directory: Path) -> int:
    return duckdb.connect().execute(f"SELECT count(*) FROM read_parquet('{directory}/**/*.parquet')").fetchone()[0]


def test_one_bad_row_does_not_sink_the_buffer(tmp_path: Path) -> None:
    """Text is made writable before it is buffered; what still cannot be written goes to the
    dead-letter file with its reason, and every other row is written."""
    dead = []
    log = PredictionLog(
        tmp_path,
        {"v__x": "float", "v__c": "string"},
        {"customer_id": "int", "k": "string"},
        "transaction_id",
        on_dead_letter=dead.append,
    )
    for i in range(2000):
        request = {"transaction_id": "\ud800" if i == 7 else i, "customer_id": i, "k": "a\udcff" if i == 9 else "k"}
        if i == 11:
            request["customer_id"] = 2**70  # cannot be an int64
        if i == 13:
            request["customer_id"] = "not a number"
        log.append(T0, request, {"v__x": float(i), "v__c": "\ud83d" if i == 5 else "c"}, [], [], 0.5, "m", "1")
    assert log.flush() == 1998
    rows = duckdb.sql(f"SELECT * FROM read_parquet('{tmp_path}/date=*/**/*.parquet')").df()
    assert len(rows) == 1998
    by_id = rows.set_index("transaction_id")
    assert by_id.loc["\\ud800", "input__customer_id"] == 7 and by_id.loc["9", "input__k"] == "a\\udcff"
    assert by_id.loc["5", "v__c"] == "\\ud83d"
    lines = [json.loads(line) for line in log.dead_letter.read_text().splitlines()]
    assert [line["row"]["transaction_id"] for line in lines] == ["11", "13"]
    assert all(line["reason"].startswith("input__customer_id:") for line in lines) and dead == [2]


def test_a_killed_writers_temp_files_are_removed_at_start(tmp_path: Path) -> None:
    part = tmp_path / "date=2026-10-01" / "hour=13"
    part.mkdir(parents=True)
    leftover = part / ".part-1.parquet.999999@otherhost.abcd1234.tmp"
    leftover.write_text("half")
    os.utime(leftover, (0, 0))  # old, written by a process this host cannot see
    recent = part / ".part-2.parquet.999999@otherhost.abcd1234.tmp"
    recent.write_text("maybe still being written")
    _log(tmp_path).start().close()
    assert not leftover.exists() and recent.exists()
