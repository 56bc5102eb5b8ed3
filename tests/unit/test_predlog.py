"""The prediction log: partitioned, bounded, durable on shutdown, resilient to disk errors."""

from __future__ import annotations

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
