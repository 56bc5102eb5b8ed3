"""Columns of byte strings held as one flat buffer plus per-row lengths, built with NumPy.

Feast's online encodings and the Redis protocol are both concatenations of small byte strings
per row (a tag, a varint, a length header, a key). Making a Python ``bytes`` object for each of
them is what limits materialization from Python (redis-py packs every argument of every command
in Python: about 85,000 keys/s at best). Here a whole batch is assembled by a few array
operations per column, and one ``tobytes()`` gives the bytes to send.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

_U64 = np.uint64


@dataclass(frozen=True)
class Ragged:
    data: np.ndarray  # uint8: every row's bytes, back to back
    lengths: np.ndarray  # int64: bytes per row

    @property
    def rows(self) -> int:
        return len(self.lengths)

    @classmethod
    def constant(cls, value: bytes, rows: int) -> Ragged:
        return cls(np.tile(np.frombuffer(value, np.uint8), rows), np.full(rows, len(value), np.int64))

    @classmethod
    def fixed(cls, matrix: np.ndarray) -> Ragged:
        """Each row of a ``(rows, width)`` uint8 matrix."""
        rows, width = matrix.shape
        return cls(np.ascontiguousarray(matrix, np.uint8).reshape(-1), np.full(rows, width, np.int64))

    @classmethod
    def prefix(cls, matrix: np.ndarray, lengths: np.ndarray) -> Ragged:
        """The first ``lengths[i]`` bytes of row ``i`` of a uint8 matrix."""
        lengths = lengths.astype(np.int64)
        if matrix.shape[1] and (lengths == matrix.shape[1]).all():
            return cls.fixed(matrix)
        return cls(matrix[np.arange(matrix.shape[1]) < lengths[:, None]], lengths)

    @classmethod
    def from_list(cls, items: Sequence[bytes]) -> Ragged:
        lengths = np.fromiter(map(len, items), np.int64, len(items))
        return cls(np.frombuffer(b"".join(items), np.uint8), lengths)

    def width(self) -> int | None:
        """The common length of every row, or None when lengths differ."""
        if not self.rows:
            return 0
        first = int(self.lengths[0])
        return first if (self.lengths == first).all() else None

    def keep(self, mask: np.ndarray) -> Ragged:
        """Rows where ``mask`` is true; the others are dropped."""
        return Ragged(self.data[np.repeat(mask, self.lengths)], self.lengths[mask])

    def blank(self, mask: np.ndarray) -> Ragged:
        """Rows where ``mask`` is false become empty; the row count stays."""
        return Ragged(self.data[np.repeat(mask, self.lengths)], np.where(mask, self.lengths, 0))

    def to_list(self) -> list[bytes]:
        raw = self.data.tobytes()
        ends = np.cumsum(self.lengths)
        return [raw[s:e] for s, e in zip((ends - self.lengths).tolist(), ends.tolist(), strict=True)]

    def tobytes(self) -> bytes:
        return self.data.tobytes()


def concat(parts: Sequence[Ragged]) -> Ragged:
    """Row-wise concatenation: row ``i`` of the result is row ``i`` of each part, in order."""
    rows = parts[0].rows
    widths = [p.width() for p in parts]
    if rows and all(w is not None for w in widths):
        matrix = np.hstack([p.data.reshape(rows, w) for p, w in zip(parts, widths, strict=True) if w])
        return Ragged.fixed(matrix) if matrix.size else Ragged(matrix.reshape(-1), np.zeros(rows, np.int64))
    lengths = np.sum([p.lengths for p in parts], axis=0) if rows else np.zeros(0, np.int64)
    out = np.empty(int(lengths.sum()), np.uint8)
    offset = np.cumsum(lengths) - lengths  # where each row starts in the output
    for part in parts:
        if part.data.size:
            source_start = np.cumsum(part.lengths) - part.lengths
            out[np.repeat(offset - source_start, part.lengths) + np.arange(part.data.size)] = part.data
        offset = offset + part.lengths
    return Ragged(out, lengths)


def lookup(table: Sequence[bytes], index: np.ndarray) -> Ragged:
    """Row ``i`` is ``table[index[i]]``."""
    if len(table) == 1:
        return Ragged.constant(table[0], len(index))
    entries = Ragged.from_list(table)
    starts = np.cumsum(entries.lengths) - entries.lengths
    lengths = entries.lengths[index]
    out_start = np.cumsum(lengths) - lengths
    source = np.repeat(starts[index] - out_start, lengths) + np.arange(int(lengths.sum()))
    return Ragged(entries.data[source], lengths)


def varints(values: np.ndarray) -> Ragged:
    """Protobuf base-128 varints of int64 values (negative ones as 64-bit two's complement)."""
    v = np.ascontiguousarray(values, np.int64).view(_U64)
    count = np.ones(len(v), np.int64)
    for k in range(1, 10):
        count += v >= _U64(1 << (7 * k))
    groups = (v[:, None] >> (np.arange(10, dtype=_U64) * _U64(7))) & _U64(0x7F)
    more = np.arange(10) < (count - 1)[:, None]
    return Ragged.prefix((groups | (more * 0x80).astype(_U64)).astype(np.uint8), count)


# Redis protocol: an array of bulk strings per command.

_CRLF = b"\r\n"


def bulk_string(value: bytes) -> bytes:
    """One RESP bulk string: ``$<length>\\r\\n<bytes>\\r\\n``."""
    return b"$%d\r\n%s\r\n" % (len(value), value)


def pack(*arguments: bytes) -> bytes:
    """One command as RESP: an array of bulk strings."""
    return b"*%d\r\n" % len(arguments) + b"".join(bulk_string(a) for a in arguments)


def bulk(column: Ragged) -> Ragged:
    """Each row as a RESP bulk string: ``$<length>\\r\\n<bytes>\\r\\n``."""
    sizes, index = np.unique(column.lengths, return_inverse=True)
    head = lookup([b"$%d\r\n" % n for n in sizes.tolist()], index.reshape(-1))
    return concat([head, column, Ragged.constant(_CRLF, column.rows)])


def command_with_rows(head: Sequence[bytes], columns: Sequence[Ragged]) -> bytes:
    """One command: the ``head`` arguments, then each row's value in each column, row by row
    (a script's per-row arguments, or the ids of one ``HMGET``)."""
    rows = columns[0].rows if columns else 0
    count = len(head) + rows * len(columns)
    body = concat([bulk(c) for c in columns]).tobytes() if rows else b""
    return b"*%d\r\n" % count + b"".join(bulk_string(a) for a in head) + body


def command(arguments: Sequence[bytes | Ragged], rows: int) -> Ragged:
    """One command per row; an argument is either the same bytes for every row or a column."""
    parts = [Ragged.constant(b"*%d\r\n" % len(arguments), rows)]
    for argument in arguments:
        parts.append(Ragged.constant(bulk_string(argument), rows) if isinstance(argument, bytes) else bulk(argument))
    return concat(parts)
