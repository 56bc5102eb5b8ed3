"""Declarative data checks run in DuckDB: schema, null rates, value ranges, duplicate keys.

Checks are compiled to one aggregate query per table so that millions of rows are checked in
one scan without loading them into pandas (which is why this is not pandera or Great
Expectations: both validate in-memory DataFrames). Every failing check is named in the result.

The specs come from the feature repo: a view's schema gives the columns and their types, field
tags ``fsml.min``, ``fsml.max`` and ``fsml.max_null_rate`` their ranges, and view tags
``fsml.check.<name>: <SQL predicate>`` row rules; a push source's schema gives the checks of
its pushed rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import duckdb

INT = "BIGINT"
FLOAT = "DOUBLE"
TEXT = "VARCHAR"
TIME = "TIMESTAMP WITH TIME ZONE"


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    max_null_rate: float = 0.0
    min: float | None = None
    max: float | None = None


@dataclass(frozen=True)
class TableSpec:
    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...] = ()
    min_rows: int = 1
    rules: tuple[tuple[str, str], ...] = field(default=())  # (check name, SQL predicate per row)


SQL_TYPES = {"int": INT, "float": FLOAT, "string": TEXT, "timestamp": TIME}
FEAST_TYPES = {"Int64": INT, "Int32": INT, "Bool": INT, "Float64": FLOAT, "Float32": FLOAT, "String": TEXT}
NULLABLE = ("mean", "min", "max", "stddev")  # aggregations without a value over an empty window
TIMESTAMPS = (Column("event_timestamp", TIME), Column("created_timestamp", TIME))


def _bound(tags: dict[str, str], name: str) -> float | None:
    return float(tags[name]) if name in tags else None


def view_spec(view: Any, min_rows: int = 1) -> TableSpec:
    """Checks of a feature table the pipeline writes, from the view's declaration."""
    keys = [Column(c.name, FEAST_TYPES.get(str(c.dtype), TEXT)) for c in view.entity_columns]
    nullable = {a.name or "" for a in getattr(view, "aggregations", []) if a.function in NULLABLE}
    columns = []
    for f in view.features:
        tags = f.tags or {}
        null_rate = float(tags.get("fsml.max_null_rate", 1.0 if f.name in nullable else 0.0))
        columns.append(
            Column(f.name, FEAST_TYPES[str(f.dtype)], null_rate, _bound(tags, "fsml.min"), _bound(tags, "fsml.max"))
        )
    if getattr(view, "aggregations", None):  # counts are never negative
        counts = {a.name for a in view.aggregations if a.function in ("count", "count_distinct")}
        columns = [Column(c.name, c.type, c.max_null_rate, 0, c.max) if c.name in counts else c for c in columns]
    rules = tuple(
        (k.removeprefix("fsml.check."), v) for k, v in sorted(view.tags.items()) if k.startswith("fsml.check.")
    )
    return TableSpec(
        view.name,
        (*keys, *TIMESTAMPS, *columns),
        key=(*(k.name for k in keys), "event_timestamp"),
        min_rows=min_rows,
        rules=rules,
    )


def push_spec(schema: Any, min_rows: int = 0) -> TableSpec:
    """Checks of a push source's rows as the offline log holds them."""
    columns = tuple(Column(c.name, SQL_TYPES[c.dtype], 0.0, c.minimum, c.maximum) for c in schema.columns)
    return TableSpec(schema.name, columns, key=(schema.id,), min_rows=min_rows)


def validate(con: duckdb.DuckDBPyConnection, relation: str, spec: TableSpec) -> list[str]:
    """Return one message per failing check of ``relation`` against ``spec``; empty if clean."""
    schema_failures = _schema_failures(con, relation, spec)
    if schema_failures:
        return schema_failures  # values cannot be checked on the wrong columns
    stats = _scan(con, relation, spec)
    failures = []
    rows = stats["rows"]
    if rows < spec.min_rows:
        failures.append(f"{spec.name}: {rows} rows, expected at least {spec.min_rows}")
    for col in spec.columns:
        failures += _column_failures(spec.name, col, stats, rows)
    if spec.key and stats["duplicate_keys"]:
        failures.append(
            f"{spec.name}.duplicate_keys: {stats['duplicate_keys']} rows share a key ({', '.join(spec.key)})"
        )
    for index, (name, _) in enumerate(spec.rules):
        if stats[f"rule_{index}"]:
            failures.append(f"{spec.name}.{name}: {stats[f'rule_{index}']} rows violate it")
    return failures


def _schema_failures(con: duckdb.DuckDBPyConnection, relation: str, spec: TableSpec) -> list[str]:
    actual = {row[0]: row[1] for row in con.execute(f"DESCRIBE {relation}").fetchall()}
    failures = []
    for col in spec.columns:
        if col.name not in actual:
            failures.append(f"{spec.name}.schema: column {col.name} is missing")
        elif actual[col.name] != col.type:
            failures.append(f"{spec.name}.schema: column {col.name} is {actual[col.name]}, expected {col.type}")
    return failures


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _scan(con: duckdb.DuckDBPyConnection, relation: str, spec: TableSpec) -> dict[str, int]:
    parts = ["count(*) AS rows"]
    for col in spec.columns:
        c = _q(col.name)
        parts.append(f"count(*) FILTER (WHERE {c} IS NULL) AS {_q('null:' + col.name)}")
        bounds = []
        if col.min is not None:
            bounds.append(f"{c} < {col.min!r}")
        if col.max is not None:
            bounds.append(f"{c} > {col.max!r}")
        if col.type == FLOAT:
            bounds.append(f"isnan({c}) OR isinf({c})")
        if bounds:
            parts.append(f"count(*) FILTER (WHERE {' OR '.join(bounds)}) AS {_q('range:' + col.name)}")
    for index, (_, predicate) in enumerate(spec.rules):
        parts.append(f"count(*) FILTER (WHERE NOT ({predicate})) AS rule_{index}")
    row = con.execute(f"SELECT {', '.join(parts)} FROM {relation}").fetchall()[0]
    names = [d[0] for d in con.description]
    stats = dict(zip(names, row, strict=True))
    if spec.key:
        keys = ", ".join(_q(k) for k in spec.key)
        stats["duplicate_keys"] = con.execute(
            f"SELECT coalesce(sum(n), 0) FROM (SELECT count(*) AS n FROM {relation} "
            f"GROUP BY {keys} HAVING count(*) > 1)"
        ).fetchall()[0][0]
    return stats


def _column_failures(table: str, col: Column, stats: dict[str, int], rows: int) -> list[str]:
    failures = []
    nulls = stats[f"null:{col.name}"]
    if rows and nulls / rows > col.max_null_rate:
        failures.append(f"{table}.{col.name} null rate: {nulls / rows:.2%} > {col.max_null_rate:.2%}")
    bad = stats.get(f"range:{col.name}", 0)
    if bad:
        lo = "-inf" if col.min is None else col.min
        hi = "inf" if col.max is None else col.max
        finite = " and finite" if col.type == FLOAT else ""
        failures.append(f"{table}.{col.name} range: {bad} rows outside [{lo}, {hi}]{finite}")
    return failures
