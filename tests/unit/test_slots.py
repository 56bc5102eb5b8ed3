"""Cluster slots of a column of keys, against redis-py's one-key function."""

from __future__ import annotations

import numpy as np
from redis.crc import key_slot

from fsml.stores.encoding import key_column
from fsml.stores.ragged import Ragged
from fsml.stores.slots import key_slots, node_table


def test_slots_match_redis_py_with_hash_tags() -> None:
    rng = np.random.default_rng(0)
    keys = [bytes(rng.integers(0, 256, rng.integers(0, 60)).astype(np.uint8)) for _ in range(5_000)]
    keys += [b"{user1000}.following", b"foo{}{bar}", b"foo{{bar}}zap", b"foo{bar}{zap}", b"{", b"}", b"{}", b"a{b"]
    keys += [b"a}b{c}", b"", b"x{y", b"{a}", b"}{a}"]
    assert key_slots(Ragged.from_list(keys)).tolist() == [key_slot(k) for k in keys]


def test_slots_of_keys_without_braces_or_without_closing_ones() -> None:
    for keys in ([b"abc", b"123456789"], [b"a{bc", b"{{{", b"x"]):
        assert key_slots(Ragged.from_list(keys)).tolist() == [key_slot(k) for k in keys]
    assert key_slot(b"123456789") == 0x31C3 % 16384  # CRC-16/XMODEM check value


def test_slots_of_feast_keys() -> None:
    """Feast's binary entity keys hold a '{' (0x7B) whenever a value byte is 123."""
    import pyarrow as pa
    from feast.value_type import ValueType

    ids = pa.array(np.arange(-200, 40_000, 7, dtype=np.int64))
    keys = key_column(["customer_id"], [ValueType.INT64], [ids], "fsml_dev")
    assert key_slots(keys).tolist() == [key_slot(k) for k in keys.to_list()]


def test_node_table() -> None:
    table = node_table([(0, 5460, 0), (5461, 10922, 2), (10923, 16383, 1)])
    assert table[[0, 5460, 5461, 16383]].tolist() == [0, 0, 2, 1]
    assert (node_table([(0, 10, 0)])[11:] == -1).all()
