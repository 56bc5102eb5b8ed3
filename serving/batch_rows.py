"""Which rows of a batch file can be scored, and why the others cannot, on Arrow columns.

Each input is checked by its declared type, in the order of the feature service's inputs, and a
row is set aside with the first reason that applies (the time field first). Columns already of
the right Arrow type are checked with NumPy; others (text holding numbers or times, mixed
types) go through pandas' coercion, so "12" is a number and "2026-01-02" a time, as they are
for a request. Scored rows carry their inputs in the model's types: times in UTC, integers as
int64, numbers as float64.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from fsml.errors import FsmlError
from fsml.featurestore import Input

INT64_MAX = 2**63 - 1
UTC_MICROS = pa.timestamp("us", tz="UTC")


def check_columns(names: Sequence[str], inputs: Sequence[Input], time_field: str) -> None:
    """Fail before any work when the file lacks an input column."""
    missing = [i.name for i in inputs if i.name not in names and i.name != time_field]
    if time_field not in names:
        missing.append(time_field)
    if missing:
        raise FsmlError(f"input has no column(s) {', '.join(missing)}")


class _Reasons:
    def __init__(self, rows: int) -> None:
        self.text = np.full(rows, "", dtype=object)

    def flag(self, mask: np.ndarray, reason: str) -> None:
        self.text[mask & (self.text == "")] = reason


def split_valid(table: pa.Table, inputs: Sequence[Input], time_field: str) -> tuple[pa.Table, pa.Table]:
    """(rows that can be scored, in the model's types; rows that cannot, with a ``reason``)."""
    check_columns(table.column_names, inputs, time_field)
    reasons = _Reasons(table.num_rows)
    times = _times(table[time_field])
    reasons.flag(~np.asarray(times.is_valid()), f"{time_field}: missing or not a time")
    typed: dict[str, pa.ChunkedArray | pa.Array] = {time_field: times}
    for spec in inputs:
        if spec.name == time_field:
            continue
        column = table[spec.name]
        if spec.dtype == "timestamp":  # another time the request carries
            typed[spec.name] = _times(column)
            reasons.flag(~np.asarray(typed[spec.name].is_valid()), f"{spec.name}: missing or not a time")
        elif spec.dtype in ("int", "float"):
            typed[spec.name] = _number(column, spec, reasons)
        else:
            text = pc.cast(column, pa.string()) if not pa.types.is_string(column.type) else column
            empty = pc.fill_null(pc.equal(pc.utf8_length(text), 0), True)
            reasons.flag(np.asarray(empty), f"{spec.name}: missing")
    bad = reasons.text != ""
    if not bad.any():
        return _with(table, typed), table.slice(0, 0).append_column("reason", pa.array([], pa.string()))
    keep = pa.array(~bad)
    good = _with(table.filter(keep), {name: column.filter(keep) for name, column in typed.items()})
    rejected = table.filter(pa.array(bad)).append_column("reason", pa.array(reasons.text[bad].tolist(), pa.string()))
    return good, rejected


def _with(table: pa.Table, columns: dict[str, pa.ChunkedArray | pa.Array]) -> pa.Table:
    for name, column in columns.items():
        table = table.set_column(table.column_names.index(name), name, column)
    return table


def _times(column: pa.ChunkedArray) -> pa.ChunkedArray | pa.Array:
    """UTC microseconds; naive times are UTC; what is not a time becomes null."""
    if pa.types.is_timestamp(column.type):
        return column.cast(UTC_MICROS, safe=False)
    if pa.types.is_date(column.type):
        return column.cast(pa.timestamp("us")).cast(UTC_MICROS)
    parsed = pd.to_datetime(column.to_pandas(), utc=True, errors="coerce").astype("datetime64[us, UTC]")
    return pa.array(parsed, UTC_MICROS, from_pandas=True)


def _number(column: pa.ChunkedArray, spec: Input, reasons: _Reasons) -> pa.Array | pa.ChunkedArray:
    """The column as int64 or float64, flagging rows that are not such numbers."""
    if pa.types.is_integer(column.type) and spec.dtype == "int":
        reasons.flag(~np.asarray(column.is_valid()), f"{spec.name}: missing or not a number")
        values = pc.cast(column, pa.int64(), safe=False)  # uint64 beyond int64 is caught below
        if pa.types.is_unsigned_integer(column.type):
            too_big = pc.fill_null(pc.greater(column, INT64_MAX), False)
            reasons.flag(np.asarray(too_big), f"{spec.name}: not an integer")
        if spec.minimum is not None:
            reasons.flag(np.asarray(pc.fill_null(pc.less(values, spec.minimum), False)), _below(spec))
        return values
    if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
        numbers = pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)
    else:
        numbers = pd.to_numeric(column.to_pandas(), errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    missing = np.isnan(numbers)
    reasons.flag(missing, f"{spec.name}: missing or not a number")
    reasons.flag(~missing & ~np.isfinite(numbers), f"{spec.name}: not finite")
    usable = np.isfinite(numbers)
    if spec.dtype == "int":
        whole = np.where(usable, numbers, 0.0)
        reasons.flag(usable & ((whole % 1 != 0) | (np.abs(whole) > INT64_MAX)), f"{spec.name}: not an integer")
    if spec.minimum is not None:
        reasons.flag(usable & (numbers < spec.minimum), _below(spec))
    if spec.dtype == "int":
        return pa.array(np.where(usable, numbers, 0.0).astype(np.int64), pa.int64())
    return pa.array(numbers, pa.float64())


def _below(spec: Input) -> str:
    return f"{spec.name}: below {spec.minimum:g}"
