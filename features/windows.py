"""Sliding-window features declared once, computed two ways: DuckDB offline, from events online.

A window view is a Feast ``StreamFeatureView`` over a ``PushSource`` with ``Aggregation``s
(column, function, ``time_window``, name). Its value at instant ``t`` aggregates the entity's
events with ``t - w <= time < t``: the event being scored is never in its own features.

- **Offline** (``change_point_sql``): one row per entity at every instant where some window
  changes (just after an event enters a window, ``time + 1 µs``, and just after it leaves one,
  ``time + w + 1 µs``). A point-in-time lookup of the latest row at or before ``t`` then gives
  the value over ``[t - w, t)`` exactly. These rows are the view's ``batch_source``, which
  training sets read.
- **Online** (``WindowView.evaluate``): the entity's recent events are kept in Redis
  (``fsml.features.window_store``) and aggregated at request time over the same half-open
  intervals, so a pushed event counts from the next request and leaves a window with no job.

Feast's own ``StreamFeatureView`` needs a Spark or Flink processor for aggregations and only
approximates sliding windows with tiles; the declaration is Feast's, the engines are these two.
Functions: ``count``, ``sum`` (0 over an empty window), ``mean``, ``min``, ``max``, ``stddev``
(sample standard deviation, null below two events) and ``count_distinct``; inputs are numeric
columns of the pushed rows or of the view's python-mode ``udf``, which derives columns from them.
"""

from __future__ import annotations

import math
import struct
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pyarrow as pa

from fsml.errors import FsmlError
from fsml.stores.encoding import key_column, key_prefix, key_value
from fsml.stores.ragged import Ragged, concat
from fsml.tables import quote_name

FUNCTIONS = ("count", "sum", "mean", "min", "max", "stddev", "count_distinct")
SQL = {
    "count": "count({c}) OVER {w}",
    "sum": "coalesce(sum({c}) OVER {w}, 0)",
    "mean": "avg({c}) OVER {w}",
    "min": "min({c}) OVER {w}",
    "max": "max({c}) OVER {w}",
    "stddev": "stddev_samp({c}) OVER {w}",
    "count_distinct": "count(DISTINCT {c}) OVER {w}",
}
SQL_TYPES = {"int": "BIGINT", "float": "DOUBLE"}
MICROS = 1_000_000


@dataclass(frozen=True)
class Aggregate:
    name: str  # the output feature
    function: str
    column: str
    micros: int  # window width
    dtype: str  # "int" or "float", the declared feature type


@dataclass(frozen=True)
class WindowView:
    """Everything both engines need from one stream feature view."""

    name: str
    source: str  # the push source feeding it
    id_column: str  # the source's row id, the last part of each packed event
    join_keys: tuple[str, ...]
    key_types: tuple[Any, ...]  # Feast ValueType per join key
    timestamp: str  # event time column of the pushed rows
    aggregates: tuple[Aggregate, ...]
    columns: tuple[str, ...]  # input columns, in the order events are packed
    ttl_micros: int  # 0: never stale
    derive: Callable[[dict[str, list[Any]]], dict[str, list[Any]]] | None = None

    @property
    def widths(self) -> tuple[int, ...]:
        return tuple(sorted({a.micros for a in self.aggregates}))

    @property
    def longest(self) -> int:
        return self.widths[-1]

    def output_types(self) -> dict[str, str]:
        return {a.name: a.dtype for a in self.aggregates}

    @cached_property
    def _key_layout(self) -> tuple[bytes, list[tuple[str, Any]]]:
        head, order = key_prefix(self.join_keys)
        return head, [(self.join_keys[i], self.key_types[i]) for i in order]

    def entities(self, table: pa.Table) -> Ragged:
        """``entity`` for every row of a table, a column at a time."""
        return key_column(self.join_keys, self.key_types, [table[k].combine_chunks() for k in self.join_keys], "")

    def entity(self, row: Any) -> bytes:
        """The entity's key bytes (Feast's serialization, without the project)."""
        head, parts = self._key_layout
        return head + b"".join(key_value(row[name], kind) for name, kind in parts)

    # --- events -------------------------------------------------------------------------------

    def event_columns(self, rows: dict[str, list[Any]]) -> dict[str, list[Any]]:
        """The pushed columns plus those the view's ``udf`` derives from them."""
        if self.derive is None:
            return rows
        derived = self.derive({k: list(v) for k, v in rows.items()})
        return {**rows, **derived}

    @cached_property
    def _packer(self) -> struct.Struct:
        return struct.Struct("<q" + "d" * len(self.columns))

    def pack(self, times: Sequence[int], columns: dict[str, Any], ids: Sequence[Any]) -> list[bytes]:
        """One Redis member per event: time (µs), the input values as doubles, then the row id
        (which keeps members of otherwise identical events apart)."""
        return self.members(times, columns, Ragged.from_list([str(i).encode() for i in ids])).to_list()

    def members(self, times: Sequence[int], columns: dict[str, Any], ids: Ragged) -> Ragged:
        """``pack`` for whole columns, assembled with NumPy (a null input is NaN)."""
        fields = [("t", "<i8"), *((f"c{i}", "<f8") for i in range(len(self.columns)))]
        packed = np.empty(len(times), dtype=fields)
        packed["t"] = np.asarray(times, dtype=np.int64)
        for i, name in enumerate(self.columns):
            values = columns[name]
            if isinstance(values, pa.ChunkedArray | pa.Array):
                values = values.to_numpy(zero_copy_only=False)
            elif isinstance(values, list):
                values = [np.nan if v is None else v for v in values]
            packed[f"c{i}"] = np.asarray(values, dtype=np.float64)
        matrix = packed.view(np.uint8).reshape(len(times), packed.dtype.itemsize)
        return concat([Ragged.fixed(matrix), ids])

    def unpack(self, members: Sequence[bytes]) -> list[tuple]:
        unpack = self._packer.unpack_from
        return [unpack(m) for m in members]

    # --- online engine ------------------------------------------------------------------------

    def evaluate(self, events: Sequence[tuple], t: int, complete_from: int | None) -> tuple[dict[str, Any] | None, str]:
        """Values at ``t`` from the entity's events before ``t`` (newest first), and a status:
        ``ok``, ``missing`` (no event before ``t``: the offline store has no row either),
        ``stale`` (the last change point is older than the view's TTL, as the offline join
        treats it) or ``incomplete`` (``t`` reaches back beyond the events kept online)."""
        if complete_from is not None and t - self.longest - 1 < complete_from:
            return None, "incomplete"
        if not events:
            return None, "missing"
        ttl = self.ttl_micros  # the last change point is at least the newest event + 1 µs: look further only past that
        if ttl and t > events[0][0] + 1 + ttl and t > self._last_change(events, t) + ttl:
            return None, "stale"
        return self._aggregate(events, t), "ok"

    def _last_change(self, events: Sequence[tuple], t: int) -> int:
        """The latest change point at or before ``t``: where the offline row would be. For each
        step ``w`` (0 and each window), the newest event with ``time + 1 + w <= t`` gives it."""
        ascending = [e[0] for e in reversed(events)]
        best = 0
        for w in (0, *self.widths):
            i = bisect_right(ascending, t - 1 - w)
            if i:
                best = max(best, ascending[i - 1] + 1 + w)
        return best

    @cached_property
    def _plan(self) -> tuple[tuple[int, ...], list[tuple[int, int, str, str, str]]]:
        """(widths, per aggregation: width index, input position, function, dtype, name)."""
        widths = self.widths
        position = {c: i + 1 for i, c in enumerate(self.columns)}
        steps = [(widths.index(a.micros), position[a.column], a.function, a.dtype, a.name) for a in self.aggregates]
        return widths, steps

    def _aggregate(self, events: Sequence[tuple], t: int) -> dict[str, Any]:
        """Events are newest first, so each window's events are a prefix; each input column is
        read once and sliced per window. Plain sums, as DuckDB's: equal to float rounding."""
        widths, steps = self._plan
        descending = [-e[0] for e in events]  # ascending order of -time
        ends = [bisect_right(descending, width - t) for width in widths]  # events with time >= t - width
        columns: dict[int, tuple[list[float], bool]] = {}
        out: dict[str, Any] = {}
        for window, position, function, dtype, name in steps:
            read = columns.get(position)
            if read is None:
                values = [e[position] for e in events[: ends[-1]]]
                read = columns[position] = (values, any(v != v for v in values))  # NaN: a null input
            values, nulls = read
            part = values[: ends[window]]
            if nulls:  # skipped, as SQL aggregates skip NULL
                part = [v for v in part if v == v]
            out[name] = _apply(function, part, dtype)
        return out


def _apply(function: str, values: list[float], dtype: str) -> Any:
    n = len(values)
    if function == "count":
        return n
    if function == "count_distinct":
        return len(set(values))
    if function == "sum":
        total = sum(values, 0.0)
        return int(total) if dtype == "int" else total
    if not n:
        return None
    if function == "mean":
        return sum(values, 0.0) / n
    if function in ("min", "max"):
        found = min(values) if function == "min" else max(values)
        return int(found) if dtype == "int" else found
    if n < 2:
        return None
    mean = sum(values, 0.0) / n
    return math.sqrt(sum([(v - mean) * (v - mean) for v in values], 0.0) / (n - 1))


def from_feast(view: Any, available: Sequence[str], id_column: str) -> WindowView:
    """A ``WindowView`` from a Feast stream feature view; ``available`` are the columns of the
    rows pushed to its source, ``id_column`` their id. Anything the engines cannot compute
    exactly is refused here."""
    source = getattr(view, "stream_source", None)
    if source is None or type(source).__name__ != "PushSource":
        raise FsmlError(f"stream feature view {view.name!r} needs a PushSource as its source")
    types = {f.name: _dtype(view.name, f) for f in view.features}
    udf = getattr(view, "udf", None)
    derived = list(udf({c: [] for c in available})) if udf else []
    aggregates = []
    for agg in view.aggregations:
        name = agg.name or agg.resolved_name(agg.time_window)
        if agg.function not in FUNCTIONS:
            raise FsmlError(f"{view.name}.{name}: function {agg.function!r} is not one of {', '.join(FUNCTIONS)}")
        if not agg.time_window or agg.time_window.total_seconds() <= 0:
            raise FsmlError(f"{view.name}.{name}: a time_window is required")
        if agg.column not in (*available, *derived):
            raise FsmlError(f"{view.name}.{name}: column {agg.column!r} is neither pushed nor derived by the udf")
        if name not in types:
            raise FsmlError(f"{view.name}: aggregation {name!r} is not in the view's schema")
        micros = int(agg.time_window.total_seconds() * MICROS)
        aggregates.append(Aggregate(name, agg.function, agg.column, micros, types[name]))
    if not aggregates:
        raise FsmlError(f"stream feature view {view.name!r} declares no aggregations")
    columns = tuple(dict.fromkeys(a.column for a in aggregates))
    ttl = int(view.ttl.total_seconds() * MICROS) if view.ttl else 0
    keys = list(view.join_keys)
    kinds = {c.name: c.dtype.to_value_type() for c in view.entity_columns}
    return WindowView(
        name=view.name,
        source=source.name,
        id_column=id_column,
        join_keys=tuple(keys),
        key_types=tuple(kinds[k] for k in keys),
        timestamp=view.timestamp_field or source.batch_source.timestamp_field,
        aggregates=tuple(aggregates),
        columns=columns,
        ttl_micros=ttl,
        derive=udf,
    )


def _dtype(view: str, field: Any) -> str:
    kind = {"Int64": "int", "Int32": "int", "Float64": "float", "Float32": "float"}.get(str(field.dtype))
    if kind is None:
        raise FsmlError(f"{view}.{field.name}: window features must be Int or Float, not {field.dtype}")
    return kind


# --- offline engine ---------------------------------------------------------------------------


def change_point_sql(view: WindowView, events: str, created: str) -> str:
    """Rows at every change point of the view's windows, from the relation ``events`` (join
    keys, ``__ts`` in epoch µs, input columns); optionally only those after ``__since`` per
    entity when ``events`` carries that column (incremental builds)."""
    keys = ", ".join(quote_name(k) for k in view.join_keys)
    shifts = " UNION ALL ".join(f"SELECT {keys}, __ts + {w + 1} AS __tau FROM {events}" for w in (0, *view.widths))
    inputs = [quote_name(c) for c in view.columns]
    windows = ", ".join(
        f"w{w} AS (PARTITION BY {keys} ORDER BY __t RANGE BETWEEN {w} PRECEDING AND 1 PRECEDING)" for w in view.widths
    )
    aggregates = ", ".join(
        f"CAST({SQL[a.function].format(c=quote_name(a.column), w=f'w{a.micros}')} AS {SQL_TYPES[a.dtype]}) "
        f"AS {quote_name(a.name)}"
        for a in view.aggregates
    )
    nulls = ", ".join(f"NULL AS {c}" for c in inputs)
    return f"""
        WITH points AS (SELECT DISTINCT {keys}, __tau FROM ({shifts})),
        stream AS (
            SELECT {keys}, __ts AS __t, {", ".join(inputs)}, FALSE AS __point FROM {events}
            UNION ALL SELECT {keys}, __tau, {nulls}, TRUE FROM points
        ),
        windows AS (SELECT {keys}, __t, __point, {aggregates} FROM stream WINDOW {windows})
        SELECT {keys}, make_timestamptz(__t) AS event_timestamp, {created}::TIMESTAMPTZ AS created_timestamp,
               {", ".join(quote_name(a.name) for a in view.aggregates)}
        FROM windows WHERE __point
        ORDER BY {keys}, event_timestamp"""
