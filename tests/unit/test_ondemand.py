"""The cheaper conversion of Arrow columns for python-mode on-demand views gives PyArrow's values."""

from __future__ import annotations

import pyarrow as pa
import pytest

from fsml.stores.ondemand import pydict, python_values

MICROS = [1_700_000_000_123_456, None, 0, -86_400_000_000, 1_800_000_000_000_001]


@pytest.mark.parametrize("tz", [None, "UTC", "Etc/UTC", "Europe/Paris", "America/New_York", "+01:00"])
@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_time_values_are_pyarrows(tz: str | None, unit: str) -> None:
    scale = {"s": 1_000_000, "ms": 1_000, "us": 1, "ns": 1}[unit]
    values = [v // scale if v is not None and unit != "ns" else v for v in MICROS]
    column = pa.chunked_array(
        [pa.array(values[:2], pa.timestamp(unit, tz=tz)), pa.array(values[2:], pa.timestamp(unit, tz=tz))]
    )
    ours, theirs = python_values(column), column.to_pylist()
    assert ours == theirs
    assert [type(v) for v in ours] == [type(v) for v in theirs]
    assert [getattr(v, "tzinfo", None) for v in ours] == [getattr(v, "tzinfo", None) for v in theirs]


def test_other_columns_are_to_pylist() -> None:
    table = pa.table({"a": [1.5, None], "b": [1, None], "c": ["x", None], "d": [True, None]})
    assert pydict(table) == table.to_pydict()


def test_a_column_shared_by_two_names_is_converted_once_into_two_lists() -> None:
    times = pa.chunked_array([pa.array([0, 1_700_000_000_000_000, None], pa.timestamp("us", tz="UTC"))])
    table = pa.table({"timestamp": times, "event_timestamp": times, "other": pa.array([1, 2, 3])})
    values = pydict(table)
    assert values == table.to_pydict()
    assert values["timestamp"] is not values["event_timestamp"]
