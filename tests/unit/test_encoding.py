"""fsml's column encoders give byte for byte what Feast's own per-value functions give."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import Value
from feast.type_map import python_values_to_proto_values
from feast.value_type import ValueType
from google.protobuf.timestamp_pb2 import Timestamp

from fsml.stores.encoding import key_column, timestamp_column, value_column, varint

RNG = np.random.default_rng(3)
INT64 = [0, 1, -1, 127, 128, 300, 2**31, -(2**31), 2**63 - 1, -(2**63), None]


def _feast(values: list, value_type: ValueType) -> list[bytes]:
    return [v.SerializeToString() for v in python_values_to_proto_values(values, value_type)]


@pytest.mark.parametrize(
    ("values", "value_type", "arrow_type"),
    [
        ([*RNG.normal(size=200).tolist(), 0.0, -0.0, float("nan"), None, 1e308], ValueType.DOUBLE, pa.float64()),
        ([*RNG.normal(size=50).astype(np.float32).tolist(), None], ValueType.FLOAT, pa.float32()),
        (INT64 + RNG.integers(-(10**12), 10**12, 100).tolist(), ValueType.INT64, pa.int64()),
        ([0, 5, -5, 2**31 - 1, -(2**31), None], ValueType.INT32, pa.int32()),
        ([True, False, None], ValueType.BOOL, pa.bool_()),
        (["", "grocery", "émoji 🧾", "x" * 300, None], ValueType.STRING, pa.string()),
    ],
)
def test_values_match_feast(values: list, value_type: ValueType, arrow_type: pa.DataType) -> None:
    assert value_column(pa.array(values, type=arrow_type), value_type).to_list() == _feast(values, value_type)


def test_varint_matches_protobuf() -> None:
    for number in INT64[:-1]:
        assert b" " + varint(number) == Value(int64_val=number).SerializeToString()


def test_timestamps_match_protobuf() -> None:
    moments = [
        datetime(1970, 1, 1, tzinfo=UTC),
        datetime(2026, 11, 1, 0, 0, 0, 1, tzinfo=UTC),
        datetime(1965, 3, 1, 12, 30, tzinfo=UTC),
        datetime(2026, 11, 22, 5, 6, 7, 890123, tzinfo=UTC),
    ]
    moments += [datetime(2026, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(m)) for m in RNG.integers(0, 10**13, 50)]
    expected = []
    for moment in moments:
        stamp = Timestamp()
        stamp.FromDatetime(moment)
        expected.append(stamp.SerializeToString())
    assert timestamp_column(pa.array(moments, pa.timestamp("us", tz="UTC"))).to_list() == expected


def test_entity_keys_match_feast() -> None:
    users = RNG.integers(-(2**40), 2**40, 30).tolist()
    shops = [f"shop-{i}-é" for i in range(30)]
    ours = key_column(
        ["user_id", "shop_id"], [ValueType.INT64, ValueType.STRING], [pa.array(users), pa.array(shops)], "fsml_dev"
    ).to_list()
    for key, user, shop in zip(ours, users, shops, strict=True):
        proto = EntityKey(
            join_keys=["user_id", "shop_id"], entity_values=[Value(int64_val=user), Value(string_val=shop)]
        )
        assert key == serialize_entity_key(proto, entity_key_serialization_version=3) + b"fsml_dev"
    single = key_column(["customer_id"], [ValueType.INT64], [pa.array([1, 2**62])], "p").to_list()
    assert (
        single[1]
        == serialize_entity_key(
            EntityKey(join_keys=["customer_id"], entity_values=[Value(int64_val=2**62)]),
            entity_key_serialization_version=3,
        )
        + b"p"
    )


def test_single_row_decoding_matches_protobuf() -> None:
    from fsml.stores.encoding import decode_timestamp, decode_value, key_prefix, key_value

    samples = [Value(double_val=x) for x in (0.0, -1.5, 1e300)] + [Value(int64_val=x) for x in INT64[:-1]]
    samples += [Value(string_val=s) for s in ("", "é🧾", "x" * 200)] + [Value(int32_val=-7), Value(bool_val=True)]
    samples += [Value(float_val=0.25), Value()]
    for proto in samples:
        kind = proto.WhichOneof("val")
        expected = None if kind is None else getattr(proto, kind)
        assert decode_value(proto.SerializeToString()) == expected
    # other kinds of value (lists, maps) as Feast's own conversion gives them in Python
    assert decode_value(Value(double_list_val={"val": [1.0, 2.0]}).SerializeToString()) == [1.0, 2.0]
    mapped = Value(map_val={"val": {"a": Value(string_val="x")}})
    assert decode_value(mapped.SerializeToString()) == {"a": "x"}
    stamp = Timestamp()
    stamp.FromDatetime(datetime(2026, 11, 1, 3, 4, 5, 678901, tzinfo=UTC))
    assert decode_timestamp(stamp.SerializeToString()) == pytest.approx(stamp.seconds + stamp.nanos / 1e9)
    head, order = key_prefix(["user_id", "shop_id"])
    key = head + b"".join(key_value(v, t) for v, t in [(("s1"), ValueType.STRING), (-42, ValueType.INT64)])
    proto = EntityKey(join_keys=["user_id", "shop_id"], entity_values=[Value(int64_val=-42), Value(string_val="s1")])
    assert order == [1, 0] and key == serialize_entity_key(proto, entity_key_serialization_version=3)
