"""Byte-string columns and the Redis protocol built from them give what the per-value code gives."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from feast.value_type import ValueType
from redis.connection import PythonRespSerializer

from fsml.stores.encoding import value_column, varint
from fsml.stores.ragged import Ragged, command, concat, varints

RNG = np.random.default_rng(11)


def _random_column(rows: int) -> list[bytes]:
    return [bytes(RNG.integers(0, 256, RNG.integers(0, 12)).astype(np.uint8)) for _ in range(rows)]


@pytest.mark.parametrize("rows", [0, 1, 257])
def test_concat_is_row_wise_join(rows: int) -> None:
    columns = [_random_column(rows), [b"k"] * rows, _random_column(rows), [b"\x00\x01"] * rows]
    joined = concat([Ragged.from_list(c) for c in columns]).to_list()
    assert joined == [b"".join(parts) for parts in zip(*columns, strict=True)]


def test_keep_and_blank() -> None:
    items = _random_column(100)
    mask = RNG.random(100) < 0.5
    column = Ragged.from_list(items)
    assert column.keep(mask).to_list() == [x for x, m in zip(items, mask, strict=True) if m]
    assert column.blank(mask).to_list() == [x if m else b"" for x, m in zip(items, mask, strict=True)]


def test_varints_match_scalar_encoder() -> None:
    edges = [n for k in range(1, 9) for n in (2 ** (7 * k) - 1, 2 ** (7 * k))]
    numbers = [0, 1, -1, 2**63 - 1, -(2**63), *edges, *RNG.integers(-(2**62), 2**62, 500).tolist()]
    assert varints(np.array(numbers, np.int64)).to_list() == [varint(n) for n in numbers]


def test_commands_match_redis_py_packing() -> None:
    keys = _random_column(50)
    values = value_column(pa.array([1.5, None, float("nan"), *RNG.normal(size=47)]), ValueType.DOUBLE).to_list()
    ours = command([b"HSET", Ragged.from_list(keys), b"field", Ragged.from_list(values)], 50).tobytes()
    pack = PythonRespSerializer(buffer_cutoff=6000, encode=lambda x: x).pack
    theirs = b"".join(b"".join(pack("HSET", k, b"field", v)) for k, v in zip(keys, values, strict=True))
    assert ours == theirs


def test_empty_columns_encode() -> None:
    for value_type, arrow_type in [(ValueType.DOUBLE, pa.float64()), (ValueType.INT64, pa.int64())]:
        assert value_column(pa.array([], arrow_type), value_type).to_list() == []
