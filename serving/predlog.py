"""The prediction log: what each request was scored on and what it got, for the monitor.

The request path only appends a tuple to a bounded buffer. A background thread turns the buffer
into Arrow tables every few seconds and writes one Parquet file per event hour:
``<log dir>/date=YYYY-MM-DD/hour=HH/part-<pid>-<n>.parquet`` (written under a temporary name,
then renamed, so readers never see half a file). When the disk is slower than the traffic the
buffer stops growing at its bound and the rows that do not fit are counted as dropped; a clean
shutdown writes everything that is buffered.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from fsml.atomic import atomic_path

log = logging.getLogger(__name__)

Entry = tuple[datetime, datetime, dict[str, Any], dict[str, Any], list[str], list[str], float, str, str]


ARROW = {
    "int": pa.int64(),
    "float": pa.float64(),
    "string": pa.string(),
    "timestamp": pa.timestamp("us", tz="UTC"),
}


def partition(moment: datetime) -> str:
    return f"date={moment:%Y-%m-%d}/hour={moment:%H}"


class PredictionLog:
    def __init__(
        self,
        directory: Path,
        columns: dict[str, str],
        inputs: dict[str, str],
        max_rows: int = 100_000,
        flush_seconds: float = 2.0,
        on_drop: Callable[[int], None] | None = None,
    ) -> None:
        self.directory = directory
        self.columns = columns  # model feature column -> "int", "float" or "string"
        self.inputs = inputs  # request field -> type, as in the feature service
        self.schema = pa.schema(
            [
                ("logged_at", pa.timestamp("us", tz="UTC")),
                ("event_timestamp", pa.timestamp("us", tz="UTC")),
                ("transaction_id", pa.string()),
                ("model_name", pa.string()),
                ("model_version", pa.string()),
                ("score", pa.float64()),
                ("missing", pa.list_(pa.string())),
                ("stale", pa.list_(pa.string())),
                *[(f"input__{n}", ARROW[t]) for n, t in inputs.items()],
                *[(c, ARROW[t]) for c, t in columns.items()],
            ]
        )
        self.max_rows = max_rows
        self.flush_seconds = flush_seconds
        self.on_drop = on_drop or (lambda n: None)
        self._buffer: deque[Entry] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._files = 0
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)

    def start(self) -> PredictionLog:
        self._thread.start()
        return self

    def append(
        self,
        event_time: datetime,
        request: dict[str, Any],
        values: dict[str, Any],
        missing: list[str],
        stale: list[str],
        score: float,
        model: str,
        version: str,
    ) -> None:
        """Called on the request path: no I/O, no conversion, O(1)."""
        entry = (
            datetime.now(UTC),
            event_time,
            request,
            values,
            missing,
            stale,
            score,
            model,
            version,
        )
        with self._lock:
            if len(self._buffer) >= self.max_rows:
                dropped = True
            else:
                self._buffer.append(entry)
                dropped = False
        if dropped:
            self.on_drop(1)
        elif len(self._buffer) >= self.max_rows // 2:
            self._wake.set()

    def close(self) -> None:
        """Write what is buffered and stop the writer thread."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=60)
        self.flush()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # a full or failing disk must not stop serving; keep the rows
                log.exception("could not write the prediction log; retrying")
                time.sleep(self.flush_seconds)

    def flush(self) -> int:
        with self._lock:
            entries = list(self._buffer)
        if not entries:
            return 0
        by_hour: dict[str, list[Entry]] = {}
        for entry in entries:
            by_hour.setdefault(partition(entry[1]), []).append(entry)
        for hour, rows in by_hour.items():
            self._write(hour, rows)
        with self._lock:  # only now are the rows safely on disk
            for _ in range(len(entries)):
                self._buffer.popleft()
        return len(entries)

    def _write(self, hour: str, rows: list[Entry]) -> None:
        self._files += 1
        target = self.directory / hour / f"part-{os.getpid()}-{time.time_ns()}-{self._files}.parquet"
        table = self._table(rows)
        with atomic_path(target) as tmp:
            pq.write_table(table, tmp, compression="zstd")

    def _table(self, rows: list[Entry]) -> pa.Table:
        data: dict[str, list[Any]] = {
            "logged_at": [r[0] for r in rows],
            "event_timestamp": [r[1] for r in rows],
            "transaction_id": [_text(r[2].get("transaction_id")) for r in rows],
            "model_name": [r[7] for r in rows],
            "model_version": [r[8] for r in rows],
            "score": [r[6] for r in rows],
            "missing": [r[4] for r in rows],
            "stale": [r[5] for r in rows],
        }
        for name in self.inputs:
            data[f"input__{name}"] = [r[2].get(name) for r in rows]
        for column in self.columns:
            data[column] = [r[3].get(column) for r in rows]
        return pa.table(data, schema=self.schema)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
