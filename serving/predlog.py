"""The prediction log: what each request was scored on and what it got, for the monitor.

The request path appends each value to its column's list (a few µs, no I/O). A background
thread swaps the lists out every few seconds, turns each into an Arrow array in one C-level call
(holding the GIL for milliseconds, not the tens of milliseconds a row-by-row conversion takes,
which showed as 100 ms stalls in the service's latency), and writes one Parquet file per event
hour: ``<log dir>/date=YYYY-MM-DD/hour=HH/part-<pid>-<n>.parquet``, under a temporary name then
renamed, so readers never see half a file. When the disk fails, converted batches are kept and
written on a later pass; when the disk is slower than the traffic, the buffer stops growing at
its bound and the rows that do not fit are counted as dropped. A clean shutdown writes all.

No row can sink the others: text is made encodable (a lone surrogate becomes ``\\ud800``) before it
is buffered, and if a buffer still cannot be converted (an integer past 64 bits, a value of the
wrong type), the rows at fault go with the reason to ``<log dir>/dead-letter/rows-<pid>.jsonl``
and the rest are written. A SIGKILL loses what is in memory: the rows of the last flush interval
(``FSML_LOG_FLUSH_SECONDS``) and of the write under way, if any.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from fsml.atomic import atomic_path
from fsml.cleanup import remove_stale

log = logging.getLogger(__name__)

ARROW = {
    "int": pa.int64(),
    "float": pa.float64(),
    "string": pa.string(),
    "timestamp": pa.timestamp("us", tz="UTC"),
}
FIXED = [
    ("logged_at", pa.timestamp("us", tz="UTC")),
    ("event_timestamp", pa.timestamp("us", tz="UTC")),
    ("model_name", pa.string()),
    ("model_version", pa.string()),
    ("score", pa.float64()),
    ("missing", pa.list_(pa.string())),
    ("stale", pa.list_(pa.string())),
]


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)


def _array(values: list[Any], kind: pa.DataType) -> pa.Array:
    if pa.types.is_timestamp(kind):
        return pa.array(values, type=pa.int64()).cast(kind)
    try:
        return pa.array(values, type=kind)
    except (pa.ArrowTypeError, pa.ArrowInvalid):  # e.g. a Bool feature (an int to the model)
        return pa.array(values).cast(kind)


def text(value: Any) -> str | None:
    """Text that UTF-8 (and so Arrow and Parquet) can hold: lone surrogates become escapes."""
    if value is None:
        return None
    value = value if isinstance(value, str) else str(value)
    if not value.isascii():
        value = value.encode("utf-8", errors="backslashreplace").decode("utf-8")
    return value


CONVERSION_ERRORS = (pa.ArrowException, ValueError, TypeError, OverflowError)


class PredictionLog:
    def __init__(
        self,
        directory: Path,
        columns: dict[str, str],
        inputs: dict[str, str],
        id_field: str,
        max_rows: int = 100_000,
        flush_seconds: float = 2.0,
        on_drop: Callable[[int], None] | None = None,
        on_dead_letter: Callable[[int], None] | None = None,
        extra: dict[str, str] | None = None,
    ) -> None:
        """``id_field`` is the label source's id column: logged as text under its own name, it
        joins the log to the labels once they arrive. ``extra``: more columns (name: type) after
        it, given to ``append`` in order (the challenger's log: the champion's score beside its)."""
        if id_field in dict(FIXED) or id_field in (extra or {}):
            raise ValueError(f"the id column {id_field!r} clashes with a prediction log column")
        self.directory = directory
        self.id_field = id_field
        self.extra = list(extra or {})
        self.columns = list(columns)  # model feature columns
        self.inputs = list(inputs)  # request fields, logged as input__<name>
        self.time_inputs = {n for n, t in inputs.items() if t == "timestamp"}
        self.text_inputs = {n for n, t in inputs.items() if t == "string"}
        self.text_columns = {c for c, t in columns.items() if t == "string"}
        self.schema = pa.schema(
            [
                *FIXED,
                (id_field, pa.string()),
                *[(n, ARROW[t]) for n, t in (extra or {}).items()],
                *[(f"input__{n}", ARROW[t]) for n, t in inputs.items()],
                *[(c, ARROW[t]) for c, t in columns.items()],
            ]
        )
        self.max_rows = max_rows
        self.flush_seconds = flush_seconds
        self.on_drop = on_drop or (lambda n: None)
        self.on_dead_letter = on_dead_letter or (lambda n: None)
        self.dead_letter = directory / "dead-letter" / f"rows-{os.getpid()}.jsonl"
        self._lock = threading.Lock()
        self._buffer = self._empty()
        self._rows = 0
        self._pending: list[tuple[str, pa.Table]] = []  # (hour partition, rows): converted, not on disk
        self._pending_rows = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._files = 0
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)

    def _empty(self) -> dict[str, list[Any]]:
        return {name: [] for name in self.schema.names}

    def start(self) -> PredictionLog:
        # Arrow imports its time-zone support on first use (hundreds of ms): do it before traffic.
        _array([0], pa.timestamp("us", tz="UTC")).cast(pa.string())
        remove_stale(self.directory, recursive=True)  # temp files of a killed predecessor
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
        extra: tuple[Any, ...] = (),
    ) -> None:
        """Called on the request path: list appends only."""
        with self._lock:
            if self._rows + self._pending_rows >= self.max_rows:
                dropped = True
            else:
                dropped = False
                b = self._buffer
                # times as integer microseconds: Arrow converts integers far faster than datetimes
                b["logged_at"].append(time.time_ns() // 1000)
                b["event_timestamp"].append((event_time - EPOCH) // MICROSECOND)
                b[self.id_field].append(text(request.get(self.id_field)))
                b["model_name"].append(model)
                b["model_version"].append(version)
                b["score"].append(score)
                b["missing"].append(missing)
                b["stale"].append(stale)
                for name, value in zip(self.extra, extra, strict=True):
                    b[name].append(value)
                for name in self.inputs:
                    value = request.get(name)
                    if name in self.time_inputs and value is not None:
                        value = (value - EPOCH) // MICROSECOND
                    elif name in self.text_inputs:
                        value = text(value)
                    b[f"input__{name}"].append(value)
                for column in self.columns:
                    value = values.get(column)
                    b[column].append(text(value) if column in self.text_columns else value)
                self._rows += 1
        if dropped:
            self.on_drop(1)
        elif self._rows >= self.max_rows // 2:
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
            except Exception:  # a full or failing disk must not stop serving; the rows are kept
                log.exception("could not write the prediction log; will retry")
                time.sleep(self.flush_seconds)

    def flush(self) -> int:
        """Convert the buffer, then write every batch not yet on disk; returns rows written."""
        with self._lock:
            buffer, rows = self._buffer, self._rows
            self._buffer, self._rows = self._empty(), 0
        if rows:
            table = self._convert(buffer, rows)
        if rows and table.num_rows:
            hours = pc.strftime(table["event_timestamp"], format="date=%Y-%m-%d/hour=%H")
            parts = [(hour, table.filter(pc.equal(hours, hour))) for hour in pc.unique(hours).to_pylist()]
            with self._lock:
                self._pending += parts
                self._pending_rows += table.num_rows
        written = 0
        while self._pending:
            hour, table = self._pending[0]
            self._write(hour, table)
            with self._lock:
                self._pending.pop(0)
                self._pending_rows -= table.num_rows
            written += table.num_rows
        return written

    def _convert(self, buffer: dict[str, list[Any]], rows: int) -> pa.Table:
        """The buffer as one table; rows that cannot be converted go to the dead-letter file."""
        try:
            arrays = {field.name: _array(buffer[field.name], field.type) for field in self.schema}
            return pa.table(arrays, schema=self.schema)
        except CONVERSION_ERRORS:
            pass
        reasons: dict[int, str] = {}
        for field in self.schema:  # the slow path: find the values at fault, column by column
            values = buffer[field.name]
            try:
                _array(values, field.type)
                continue
            except CONVERSION_ERRORS:
                pass
            for index, value in enumerate(values):
                try:
                    _array([value], field.type)
                except CONVERSION_ERRORS as exc:
                    reasons.setdefault(index, f"{field.name}: {type(exc).__name__}: {exc}")
        good = [i for i in range(rows) if i not in reasons]
        self._to_dead_letter(buffer, reasons)
        arrays = {f.name: _array([buffer[f.name][i] for i in good], f.type) for f in self.schema}
        return pa.table(arrays, schema=self.schema)

    def _to_dead_letter(self, buffer: dict[str, list[Any]], reasons: dict[int, str]) -> None:
        if not reasons:
            return
        at = datetime.now(UTC).isoformat()
        lines = [
            json.dumps({"at": at, "reason": reason, "row": {k: v[i] for k, v in buffer.items()}}, default=repr)
            for i, reason in sorted(reasons.items())
        ]
        try:
            self.dead_letter.parent.mkdir(parents=True, exist_ok=True)
            with open(self.dead_letter, "a", encoding="utf-8") as handle:
                handle.write("\n".join(lines) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
        except OSError:  # the rest of the buffer still goes to the log
            log.exception("could not write %d bad prediction log rows to %s", len(reasons), self.dead_letter)
            self.on_drop(len(reasons))
            return
        log.error("%d prediction log rows could not be written; kept in %s", len(reasons), self.dead_letter)
        self.on_dead_letter(len(reasons))

    def _write(self, hour: str, table: pa.Table) -> None:
        self._files += 1
        target = self.directory / hour / f"part-{os.getpid()}-{time.time_ns()}-{self._files}.parquet"
        with atomic_path(target, clean=False) as tmp:
            pq.write_table(table, tmp, compression="zstd")
