"""Partitions of entity rows by ranges of an entity key, the unit of distributed joins.

A point-in-time join of one partition of the entity rows needs only the feature rows with the
same keys. The partitions are ranges of one entity key, cut at quantiles of the rows to join
so that they hold about as many rows each. Ranges rather than hashes: feature tables are
written sorted by their keys, so the Parquet row groups of the other ranges are skipped by their
statistics, where a hash partition would decode the whole table to find its rows. Views keyed
by another entity are read whole by every partition.

Keys are compared as the type the feature view declares; an entity value that is not of that
type (``2.5`` for an integer key, say) or is missing falls in the first range, where the row's
validation rejects it, so every row belongs to exactly one partition.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
from feast.value_type import ValueType

from fsml.stores import quote_name

SQL_TYPES = {ValueType.INT64: "BIGINT", ValueType.INT32: "INTEGER", ValueType.STRING: "VARCHAR"}


@dataclass(frozen=True)
class KeyRange:
    """Rows whose ``key`` is at least ``low`` and below ``high`` (None: unbounded)."""

    key: str  # entity column
    type: str  # SQL type the key is compared as
    low: Any = None
    high: Any = None

    def covers(self, columns: Iterable[str]) -> bool:
        """Whether a view joined on ``columns`` (entity names) is keyed by this range's key."""
        return self.key in columns

    def _bounds(self, value: str) -> list[str]:
        out = []
        if self.low is not None:
            out.append(f"{value} >= {_literal(self.low)}")
        if self.high is not None:
            out.append(f"{value} < {_literal(self.high)}")
        return out

    def predicate(self, table_columns: Mapping[str, str]) -> str:
        """SQL true for the feature rows of this range; ``table_columns`` maps the table's key
        columns to the entity columns (a view's join key map). The column is compared as it
        is, so that DuckDB can skip row groups by their statistics."""
        column = quote_name(next(t for t, e in table_columns.items() if e == self.key))
        return " AND ".join(self._bounds(column)) or "TRUE"

    def entity_predicate(self) -> str:
        """The same test on entity rows, whose keys may need coercion."""
        value = f"TRY_CAST({quote_name(self.key)} AS {self.type})"
        test = " AND ".join(self._bounds(value)) or "TRUE"
        return f"({test} OR {value} IS NULL)" if self.low is None else test


def _literal(value: Any) -> str:
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(int(value))


def key_ranges(
    key: str, sql_type: str, relation: str, params: list[Any] | dict[str, Any], count: int
) -> list[KeyRange]:
    """About ``count`` ranges of ``key`` holding as many rows of ``relation`` (a SQL relation,
    with ``params``) each; fewer when the key has fewer distinct values."""
    if count <= 1 or not key:
        return [KeyRange(key, sql_type)]
    fractions = [i / count for i in range(1, count)]
    value = f"TRY_CAST({quote_name(key)} AS {sql_type})"
    con = duckdb.connect()
    found = con.execute(f"SELECT quantile_disc({value}, {fractions}) FROM {relation}", params).fetchall()[0][0]
    cuts = sorted({v for v in found or [] if v is not None})
    bounds = [None, *cuts, None]
    return [KeyRange(key, sql_type, low, high) for low, high in zip(bounds[:-1], bounds[1:], strict=True)]


def partition_key(store: Any, service_name: str) -> tuple[str, str]:
    """The entity column to partition a service's entity rows by, and its SQL type: the first
    key of its largest file-backed feature view, the one whose rows a partition most needs to
    cut ("" when the service has none)."""
    from feast.infra.offline_stores.file_source import FileSource

    best: tuple[int, str, str] = (-1, "", "")
    for projection in store.get_feature_service(service_name).feature_view_projections:
        try:
            view = store.get_feature_view(projection.name)
        except Exception:  # an on-demand view: no table of its own
            continue
        source = view.batch_source
        if not isinstance(source, FileSource) or not view.entity_columns:
            continue
        path = FileSource.get_uri_for_file_path(str(store.repo_path), source.path)
        try:
            rows = ds.dataset(path, format="parquet").count_rows()
        except (OSError, pa.ArrowException):
            rows = 0
        column = view.entity_columns[0]
        key = (projection.join_key_map or {}).get(column.name, column.name)
        if rows > best[0]:
            best = (rows, key, SQL_TYPES.get(column.dtype.to_value_type(), "VARCHAR"))
    return best[1], best[2]
