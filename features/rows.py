"""Pushed rows checked against their ``PushSchema`` before anything is written.

A request is all or nothing: every problem of every row is collected (row index, field, what is
wrong) and the request is refused if there is any. Rows come as JSON objects or as rows of a
file; values are checked for what the repo declares: type, presence, ``fsml.min`` / ``fsml.max``,
finiteness, and event times within a sane range (not before 2000, not beyond the allowed clock
skew ahead of now).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
from fsml.features.sources import Column, PushSchema

from fsml.errors import FsmlError

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
INT64 = 2**63 - 1
ARROW = {"int": pa.int64(), "float": pa.float64(), "string": pa.string(), "timestamp": pa.timestamp("us", tz="UTC")}
MAX_ERRORS = 100


class RowsRejected(FsmlError):
    """Problems found in a request, each with the row index and the field."""

    def __init__(self, source: str, errors: list[dict[str, Any]]) -> None:
        self.source = source
        self.errors = errors
        shown = "; ".join(f"row {e['row']}: {e['field']}: {e['message']}" for e in errors[:5])
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        super().__init__(f"push to {source!r} refused, nothing written: {shown}{more}")


@dataclass(frozen=True)
class Checked:
    table: pa.Table  # typed columns of the schema, in schema order
    times: list[int]  # event times, epoch µs
    ids: list[Any]


def check_rows(schema: PushSchema, rows: Sequence[Any], now: datetime, max_future: timedelta) -> Checked:
    """Typed rows, or ``RowsRejected`` naming every bad row and field."""
    latest = now + max_future
    errors: list[dict[str, Any]] = []
    columns: dict[str, list[Any]] = {c.name: [] for c in schema.columns}
    allowed = set(columns)
    for index, row in enumerate(rows):
        if not isinstance(row, Mapping):
            errors.append({"row": index, "field": "", "message": "not an object"})
            continue
        for name in row.keys() - allowed:
            errors.append({"row": index, "field": str(name), "message": "unknown field"})
        for column in schema.columns:
            value, problem = _value(column, row.get(column.name), latest)
            if problem:
                errors.append({"row": index, "field": column.name, "message": problem})
            columns[column.name].append(value)
        if len(errors) >= MAX_ERRORS:
            break
    if errors:
        raise RowsRejected(schema.name, errors)
    times = columns[schema.timestamp]
    table = pa.table({c.name: pa.array(columns[c.name], type=ARROW[c.dtype]) for c in schema.columns})
    return Checked(table, times, columns[schema.id])


def _value(column: Column, value: Any, latest: datetime) -> tuple[Any, str | None]:
    if value is None:
        return None, "required"
    kind = column.dtype
    if kind == "timestamp":
        return _time(value, latest)
    if kind == "string":
        if not isinstance(value, str) or not value:
            return None, "expected a non-empty string"
        return value, None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None, f"expected {'an integer' if kind == 'int' else 'a number'}"
    if kind == "int":
        if isinstance(value, float) and not value.is_integer():
            return None, "expected an integer"
        if not -INT64 - 1 <= value <= INT64:
            return None, "out of the int64 range"
        value = int(value)
    elif not math.isfinite(value):
        return None, "not a finite number"
    else:
        value = float(value)
    if column.minimum is not None and value < column.minimum:
        return None, f"below the minimum {column.minimum:g}"
    if column.maximum is not None and value > column.maximum:
        return None, f"above the maximum {column.maximum:g}"
    return value, None


def _time(value: Any, latest: datetime) -> tuple[Any, str | None]:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
        except ValueError:
            return None, "not an ISO 8601 time"
    elif hasattr(value, "to_pydatetime"):  # pandas Timestamp from a file
        value = value.floor("us").to_pydatetime()  # the stores keep microseconds
    if not isinstance(value, datetime):
        return None, "expected an ISO 8601 time"
    moment = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if moment < EARLIEST or moment > latest:
        return None, f"outside [{EARLIEST:%Y-%m-%d}, now + allowed clock skew]"
    return (moment - EPOCH) // MICROSECOND, None


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)
