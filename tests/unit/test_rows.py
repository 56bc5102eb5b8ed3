"""Pushed rows are checked whole: every bad row and field is named, nothing is half-accepted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fsml.features.rows import RowsRejected, check_rows
from fsml.features.sources import Column, PushSchema

SCHEMA = PushSchema(
    name="tx", id="id", timestamp="at", path=Path("/nowhere"),
    columns=(Column("id", "int"), Column("who", "string"), Column("amount", "float", 0, 1e6),
             Column("at", "timestamp")),
)  # fmt: skip
NOW = datetime(2026, 11, 1, tzinfo=UTC)


def _row(**change: object) -> dict:
    return {"id": 1, "who": "a", "amount": 2.5, "at": "2026-10-31T12:00:00Z", **change}


def test_good_rows_are_typed() -> None:
    checked = check_rows(SCHEMA, [_row(), _row(id=2, amount=3, at=datetime(2026, 10, 31))], NOW, timedelta(hours=1))
    assert checked.table.num_rows == 2 and checked.ids == [1, 2]
    assert checked.table["amount"].to_pylist() == [2.5, 3.0]
    assert checked.times[1] == int(datetime(2026, 10, 31, tzinfo=UTC).timestamp()) * 1_000_000


def test_every_problem_is_named_with_its_row_and_field() -> None:
    rows = [_row(), _row(amount=-1), _row(id="7"), _row(who=""), _row(at="1999-01-01T00:00:00Z"),
            _row(at=(NOW + timedelta(hours=2)).isoformat()), _row(extra=1), {"id": 9}, "nope",
            _row(id=True)]  # fmt: skip
    with pytest.raises(RowsRejected) as caught:
        check_rows(SCHEMA, rows, NOW, timedelta(hours=1))
    found = {(e["row"], e["field"]) for e in caught.value.errors}
    assert {(1, "amount"), (2, "id"), (3, "who"), (4, "at"), (5, "at"), (6, "extra"), (7, "who"), (7, "amount"),
            (7, "at"), (8, ""), (9, "id")} <= found  # fmt: skip
    assert (0, "id") not in found and "row 1: amount: below the minimum 0" in caught.value.message
