"""Declarative data checks run in DuckDB: schema, null rates, value ranges, duplicate keys.

Checks are compiled to one aggregate query per table so that millions of rows are checked in
one scan without loading them into pandas (which is why this is not pandera or Great
Expectations: both validate in-memory DataFrames). Every failing check is named in the result.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
    row = con.execute(f"SELECT {', '.join(parts)} FROM {relation}").fetchone()
    names = [d[0] for d in con.description]
    stats = dict(zip(names, row, strict=True))
    if spec.key:
        keys = ", ".join(_q(k) for k in spec.key)
        stats["duplicate_keys"] = con.execute(
            f"SELECT coalesce(sum(n), 0) FROM (SELECT count(*) AS n FROM {relation} "
            f"GROUP BY {keys} HAVING count(*) > 1)"
        ).fetchone()[0]
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
