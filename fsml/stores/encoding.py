"""Feast's online encodings, column at a time: entity keys, feature values, event times.

Feast builds one protobuf object per value (``python_values_to_proto_values``) and one per
entity key; at materialization that is most of the time spent. These functions produce the same
bytes from whole Arrow columns: serialized ``feast.types.Value`` protobufs (a tag byte, then the
value), entity keys in Feast's v3 layout, and ``google.protobuf.Timestamp``s. Tests compare
them byte for byte with Feast's own functions; types not covered here go to Feast's.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
from feast.value_type import ValueType

from fsml.stores.ragged import Ragged, concat, varints

# Value proto: field number << 3 | wire type, for the scalar members of the `val` oneof.
TAGS = {
    ValueType.STRING: b"\x12",  # 2, length-delimited
    ValueType.INT32: b"\x18",  # 3, varint
    ValueType.INT64: b"\x20",  # 4, varint
    ValueType.DOUBLE: b"\x29",  # 5, 64-bit
    ValueType.FLOAT: b"\x35",  # 6, 32-bit
    ValueType.BOOL: b"\x38",  # 7, varint
}
SUPPORTED_KEYS = (ValueType.INT64, ValueType.STRING, ValueType.INT32)


def varint(value: int) -> bytes:
    """Protobuf base-128 varint; negative numbers as their 64-bit two's complement."""
    value &= 0xFFFFFFFFFFFFFFFF
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def value_column(column: pa.Array | pa.ChunkedArray, value_type: ValueType) -> Ragged:
    """Serialized Value protos of a column; nulls (and NaN floats) are the empty proto."""
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    tag = TAGS[value_type]
    rows = len(column)
    valid = np.asarray(column.is_valid())
    if value_type in (ValueType.DOUBLE, ValueType.FLOAT):
        kind, width = ("<f8", 8) if value_type == ValueType.DOUBLE else ("<f4", 4)
        numbers = column.to_numpy(zero_copy_only=False).astype(kind)
        valid &= ~np.isnan(numbers)
        payload = numbers.view(np.uint8).reshape(rows, width)
        matrix = np.hstack([np.full((rows, 1), tag[0], np.uint8), payload])
        return Ragged.prefix(matrix, np.where(valid, matrix.shape[1], 0))
    if value_type in (ValueType.INT64, ValueType.INT32, ValueType.BOOL):
        filled = column.fill_null(False if pa.types.is_boolean(column.type) else 0)
        numbers = filled.to_numpy(zero_copy_only=False).astype(np.int64)
        return concat([Ragged.constant(tag, rows), varints(numbers)]).blank(valid)
    if value_type == ValueType.STRING:
        return Ragged.from_list(
            [tag + varint(len(b := s.encode())) + b if s is not None else b"" for s in column.to_pylist()]
        )
    raise KeyError(value_type)


def timestamp_column(column: pa.Array | pa.ChunkedArray) -> Ragged:
    """``google.protobuf.Timestamp`` bytes: seconds (field 1) and, if not zero, nanos (field 2)."""
    micros = column.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64()).to_numpy(zero_copy_only=False)
    seconds, rest = np.divmod(micros, 1_000_000)
    rows = len(micros)
    return concat(
        [
            concat([Ragged.constant(b"\x08", rows), varints(seconds)]).blank(seconds != 0),
            concat([Ragged.constant(b"\x10", rows), varints(rest * 1000)]).blank(rest != 0),
        ]
    )


def key_column(
    join_keys: Sequence[str], key_types: Sequence[ValueType], columns: Sequence[pa.Array], project: str
) -> Ragged:
    """Redis keys of Feast's online store: the v3 serialized entity key, then the project."""
    head, order = key_prefix(join_keys)
    rows = len(columns[0])
    parts = [Ragged.constant(head, rows)]
    parts += [_key_values(columns[i], key_types[i]) for i in order]
    parts.append(Ragged.constant(project.encode(), rows))
    return concat(parts)


def _key_values(column: pa.Array, value_type: ValueType) -> Ragged:
    if value_type in (ValueType.INT64, ValueType.INT32):
        kind, width = ("<i8", 8) if value_type == ValueType.INT64 else ("<i4", 4)
        numbers = column.to_numpy(zero_copy_only=False).astype(kind).view(np.uint8).reshape(-1, width)
        head = np.frombuffer(struct.pack("<II", value_type.value, width), np.uint8)
        return Ragged.fixed(np.hstack([np.broadcast_to(head, (len(numbers), len(head))), numbers]))
    if value_type == ValueType.STRING:
        return Ragged.from_list(
            [struct.pack("<II", ValueType.STRING.value, len(b := s.encode())) + b for s in column.to_pylist()]
        )
    raise KeyError(value_type)


# One row at a time, for the scoring hot path: the same layouts as above, without protobuf objects.


def key_prefix(join_keys: Sequence[str]) -> tuple[bytes, list[int]]:
    """The constant head of an entity key and the order its values are written in."""
    order = sorted(range(len(join_keys)), key=lambda i: join_keys[i])
    head = struct.pack("<I", len(join_keys))
    for i in order:
        name = join_keys[i].encode()
        head += struct.pack("<II", ValueType.STRING.value, len(name)) + name
    return head, order


_INT64_HEAD = struct.pack("<II", ValueType.INT64.value, 8)
_INT32_HEAD = struct.pack("<II", ValueType.INT32.value, 4)


def key_value(value: Any, value_type: ValueType) -> bytes:
    if value_type == ValueType.INT64:
        return _INT64_HEAD + struct.pack("<q", value)
    if value_type == ValueType.INT32:
        return _INT32_HEAD + struct.pack("<i", value)
    encoded = str(value).encode()
    return struct.pack("<II", ValueType.STRING.value, len(encoded)) + encoded


def _read_varint(raw: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = raw[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


_DOUBLE, _FLOAT, _INT64, _INT32, _STRING, _BOOL = 0x29, 0x35, 0x20, 0x18, 0x12, 0x38
_unpack_double = struct.Struct("<d").unpack_from
_unpack_float = struct.Struct("<f").unpack_from


def decode_value(raw: bytes | None) -> Any:
    """A serialized Value proto's scalar (None for a missing or empty one); other kinds of value
    are decoded by protobuf."""
    if not raw:
        return None
    tag = raw[0]
    if tag == _DOUBLE and len(raw) == 9:
        return _unpack_double(raw, 1)[0]
    if tag in (_INT64, _INT32):
        value, end = _read_varint(raw, 1)
        if end == len(raw):
            return value - (1 << 64) if value >= 1 << 63 else value
    elif tag == _STRING:
        length, start = _read_varint(raw, 1)
        if start + length == len(raw):
            return raw[start:].decode()
    elif tag == _FLOAT and len(raw) == 5:
        return _unpack_float(raw, 1)[0]
    elif tag == _BOOL and len(raw) == 2:
        return bool(raw[1])
    return _decode_with_protobuf(raw)


def _decode_with_protobuf(raw: bytes) -> Any:
    """Other kinds of value (lists, maps, JSON, structs) as Feast gives them in Python."""
    from feast.protos.feast.types.Value_pb2 import Value
    from feast.type_map import feast_value_type_to_python_type

    value = Value.FromString(raw)
    kind = value.WhichOneof("val")
    return None if kind is None or kind == "null_val" else feast_value_type_to_python_type(value)


def decode_timestamp(raw: bytes | None) -> float | None:
    """Seconds since the epoch of a serialized ``google.protobuf.Timestamp``."""
    if raw is None:
        return None
    seconds = nanos = 0
    pos = 0
    while pos < len(raw):
        tag = raw[pos]
        value, pos = _read_varint(raw, pos + 1)
        if tag == 0x08:
            seconds = value - (1 << 64) if value >= 1 << 63 else value
        elif tag == 0x10:
            nanos = value
    return seconds + nanos / 1e9
