"""Declarative data checks: each broken rule is named in the result."""

from __future__ import annotations

import duckdb
import pytest
from fsml.features.validation import FLOAT, INT, TEXT, Column, TableSpec, validate

SPEC = TableSpec(
    "t",
    (
        Column("id", INT, min=1),
        Column("x", FLOAT, max_null_rate=0.5, min=0, max=1),
        Column("name", TEXT),
    ),
    key=("id",),
    rules=(("x_below_id", "x IS NULL OR x < id"),),
)


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    return duckdb.connect()


def _table(con: duckdb.DuckDBPyConnection, rows: str) -> str:
    con.execute(f"CREATE OR REPLACE TABLE t AS SELECT * FROM (VALUES {rows}) v(id, x, name)")
    return "t"


def test_clean_table_passes(con: duckdb.DuckDBPyConnection) -> None:
    assert validate(con, _table(con, "(1::BIGINT, 0.5::DOUBLE, 'a'), (2, NULL, 'b')"), SPEC) == []


def test_every_failing_check_is_named(con: duckdb.DuckDBPyConnection) -> None:
    rel = _table(
        con,
        "(1::BIGINT, 2.0::DOUBLE, 'a'), (1, 'nan'::DOUBLE, NULL), (0, NULL, 'c'), (3, NULL, 'd')",
    )
    failures = validate(con, rel, SPEC)
    text = "\n".join(failures)
    assert "t.id range: 1 rows outside [1, inf]" in text
    assert "t.x range: 2 rows outside [0, 1] and finite" in text
    assert "t.x null rate: 50.00% > 50.00%" not in text  # exactly at the limit is allowed
    assert "t.name null rate" in text
    assert "t.duplicate_keys: 2 rows share a key (id)" in text
    assert "t.x_below_id: 2 rows violate it" in text  # 2.0 and NaN (NaN sorts above all)


def test_wrong_schema_is_reported_before_values(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE TABLE t AS SELECT 1 AS id, 'x' AS x")
    failures = validate(con, "t", SPEC)
    assert failures == [
        "t.schema: column id is INTEGER, expected BIGINT",
        "t.schema: column x is VARCHAR, expected DOUBLE",
        "t.schema: column name is missing",
    ]


def test_empty_table_fails_min_rows(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE TABLE t (id BIGINT, x DOUBLE, name VARCHAR)")
    assert validate(con, "t", SPEC) == ["t: 0 rows, expected at least 1"]
