"""The ASOF store's retrieval job: point-in-time joins done by DuckDB's ``ASOF JOIN``, with the
semantics ``fsml.stores.duckdb`` describes (and a differential test checks against stock Feast).

Each view is joined on its own, from the entity keys and times only (``join``), and only the
feature rows that can matter are read: up to the newest entity time, from the oldest minus the
TTL, and, for a partition of the entity rows (``fsml.stores.partition``), of its key range.
"""

from __future__ import annotations

import copy
import logging
import os
from datetime import timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from feast.infra.offline_stores.file_source import FileSource
from feast.infra.offline_stores.offline_store import RetrievalJob, RetrievalMetadata
from feast.on_demand_feature_view import OnDemandFeatureView

from fsml.stores import ondemand
from fsml.stores import search as binary_search
from fsml.tables import parquet_files, quote_name, scan

if TYPE_CHECKING:
    from fsml.stores.partition import KeyRange

log = logging.getLogger(__name__)

FRESH = "__fsml_fresh"
ROW_ID = "__fsml_row_id"
_MICROSECOND = timedelta(microseconds=1)
_UTC_MICROS = pa.timestamp("us", tz="UTC")


def _time_literal(moment: Any) -> str:
    return f"TIMESTAMPTZ '{pd.Timestamp(moment).isoformat()}'"


class AsofRetrievalJob(RetrievalJob):
    def __init__(
        self,
        entity_df: pd.DataFrame,
        timestamp_column: str,
        views: list[tuple[Any, list[str], list[str]]],  # (view, features, output names)
        repo_path: str,
        on_demand_feature_views: list[OnDemandFeatureView],
        full_feature_names: bool,
        metadata: RetrievalMetadata | None,
    ) -> None:
        self.entity_df = entity_df
        self.timestamp_column = timestamp_column
        self.views = views
        self.repo_path = repo_path
        self._on_demand_feature_views = on_demand_feature_views
        self._full_feature_names = full_feature_names
        self._metadata = metadata
        self.part: KeyRange | None = None

    @property
    def full_feature_names(self) -> bool:
        return self._full_feature_names

    @property
    def on_demand_feature_views(self) -> list[OnDemandFeatureView]:
        return self._on_demand_feature_views

    @property
    def metadata(self) -> RetrievalMetadata | None:
        return self._metadata

    def _to_df_internal(self, timeout: int | None = None) -> pd.DataFrame:
        return self._to_arrow_internal(timeout).to_pandas()

    def to_df(self, validation_reference: Any = None, timeout: int | None = None) -> pd.DataFrame:
        """Feast's ``to_df`` without its ``reset_index(drop=True)``: ``to_pandas`` already gives
        a fresh RangeIndex, and the reset copies every column (0.7 s at 10 million rows)."""
        return self.to_arrow(validation_reference=validation_reference, timeout=timeout).to_pandas()

    def to_arrow(self, validation_reference: Any = None, timeout: int | None = None) -> pa.Table:
        """Feast's on-demand transformations, given only the columns the views read.

        Feast converts the whole table to Python objects for a python-mode view
        (``to_pydict``); here its logic runs on a table of the views' inputs and the entity
        columns, converted by ``fsml.stores.ondemand`` (the same values, ten times faster), and
        the outputs are appended: the same columns for a fraction of the conversion. Each view
        runs on its own, so a failure in a user's function names the view.
        """
        if validation_reference is not None or not self.on_demand_feature_views:
            return super().to_arrow(validation_reference=validation_reference, timeout=timeout)
        return self.on_demand(self._to_arrow_internal(timeout))

    def on_demand(self, table: pa.Table) -> pa.Table:
        """The requested on-demand features appended to a joined ``table``."""
        refs = self.metadata.features if self.metadata else []
        return ondemand.append_on_demand(
            table, self.on_demand_feature_views, refs, self.full_feature_names, self.entity_df.columns
        )

    def partitioned(self, part: KeyRange | None) -> AsofRetrievalJob:
        """This job reading, in the views keyed by the range's key, only the feature rows of
        that range: for entity rows of one partition (``fsml.stores.partition``)."""
        job = copy.copy(self)
        job.part = part
        return job

    def _to_arrow_internal(self, timeout: int | None = None) -> pa.Table:
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        return self.join(con, _utc_columns(pa.Table.from_pandas(self.entity_df, preserve_index=False)))

    def join(self, con: duckdb.DuckDBPyConnection, entities: pa.Table, search: bool = False) -> pa.Table:
        """The point-in-time join of ``entities`` (time columns in UTC), on-demand views aside.

        One ``ASOF JOIN`` per view, of the entity keys and times only: a join sorts its left
        side, and carrying every column already joined through the next join cost about a
        quarter more with four views. Each view's result is put back in entity order by a row
        number and its columns appended, so the output keeps the entity rows' order.

        Feature rows after the newest entity time, or older than the oldest one minus the
        view's TTL, can never be chosen (or would be expired), so they are dropped as they are
        read: a partition of the entity rows reads the feature rows of its own time range.

        With ``search``, views with one join key are looked up by binary search in their rows
        (``fsml.stores.search``): for slices of entity rows whose feature rows are few.
        """
        entities = _utc_columns(entities).replace_schema_metadata(None)  # no pandas dtypes to restore
        times = entities[self.timestamp_column]
        found = pc.min_max(times)
        newest = found["max"].as_py()  # rounded down to microseconds: one more keeps a row at the exact time
        window = (found["min"].as_py(), newest and newest + _MICROSECOND)
        used = {ours for view, _, _ in self.views for _, ours in view_join_keys(view)}
        keys = entities.select([c for c in entities.column_names if c in used or c == self.timestamp_column])
        rows = entities.num_rows
        con.register("fsml_entities", keys.append_column(ROW_ID, pa.array(np.arange(rows, dtype=np.int64))))
        try:
            for index in range(len(self.views)):
                found = self._search(con, index, window, entities) if search else None
                if found is not None:
                    for name, column in found.items():
                        entities = entities.append_column(name, column)
                    continue
                part = self._expire(con.sql(self.query(index, window)).to_arrow_table(), index)
                positions = np.empty(rows, dtype=np.int64)
                positions[part[ROW_ID].to_numpy()] = np.arange(rows, dtype=np.int64)
                part = part.take(positions)
                for name in self.views[index][2]:
                    entities = entities.append_column(name, part[name])
        finally:
            con.unregister("fsml_entities")
        return entities

    def query(self, index: int, window: tuple[Any, Any] = (None, None)) -> str:
        """The ASOF join of one view: the entity row number, the view's features and, with a
        TTL, whether the row found is still fresh."""
        view, features, names = self.views[index]
        ts = quote_name(self.timestamp_column)
        entities = (
            f"e AS (SELECT *, {ts}::TIMESTAMPTZ AS __fsml_ts, "
            f"{{'t': {ts}::TIMESTAMPTZ, 'c': 'infinity'::TIMESTAMPTZ}} AS __fsml_pair FROM fsml_entities)"
        )  # DuckDB drops __fsml_pair when the join does not use it
        rows, paired = self._view_rows(view, features, window)
        on = " AND ".join(f"e.{quote_name(ours)} = v.{quote_name(theirs)}" for theirs, ours in view_join_keys(view))
        at = "e.__fsml_pair >= v.__fsml_pair" if paired else "e.__fsml_ts >= v.__fsml_event"
        pairs = zip(features, names, strict=True)
        selected = [f"e.{ROW_ID}", *(f"v.{quote_name(f)} AS {quote_name(n)}" for f, n in pairs)]
        if _ttl_micros(view.ttl) is not None:
            selected.append(f"e.__fsml_ts <= v.__fsml_expires AS {FRESH}")
        return f"WITH {entities}, v AS ({rows}) SELECT {', '.join(selected)} FROM e ASOF LEFT JOIN v ON {on} AND {at}"

    def _search(
        self, con: duckdb.DuckDBPyConnection, index: int, window: tuple[Any, Any], entities: pa.Table
    ) -> dict[str, pa.Array] | None:
        """One view's features by binary search; None when DuckDB must join it."""
        view, features, names = self.views[index]
        keys = view_join_keys(view)
        if len(keys) != 1:
            return None
        ((table_key, entity_key),) = keys
        sql, _ = self._view_rows(view, features, window, search=True)
        rows = con.sql(sql).to_arrow_table()
        if not binary_search.supported(rows.schema.field(table_key).type):
            return None
        times = entities[self.timestamp_column].cast(pa.int64()).to_numpy(zero_copy_only=False)
        try:
            found = binary_search.lookup(rows, table_key, entities[entity_key], times)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # keys of another type than the table's
            return None
        if found is None:
            return None
        return dict(zip(names, binary_search.gather(rows, features, found), strict=True))

    def _expire(self, table: pa.Table, index: int) -> pa.Table:
        """Null the features of rows older than their view's TTL, then drop the freshness column.

        One comparison per row in SQL, then each feature's validity bitmap is ANDed with it: a
        ``CASE`` per feature column in SQL copied every value (80 ms at 1M rows).
        """
        if FRESH not in table.column_names:
            return table
        fresh = table[FRESH]
        for name in self.views[index][2]:
            position = table.column_names.index(name)
            table = table.set_column(position, name, _null_unless(table[name], fresh))
        return table.drop_columns([FRESH])

    def _view_rows(
        self, view: Any, features: list[str], window: tuple[Any, Any], search: bool = False
    ) -> tuple[str, bool]:
        """The view's rows for the join, and whether they are keyed by (event, created) (for a
        search, the created time is a column of its own and rows without a key or time are left
        out, as a join leaves them).

        With that pair the ASOF join picks the latest event at or before the entity row and,
        among equal events, the latest created (a row without a created time loses, as it sorts
        last in Feast's ordering). Without a created column, or when no two rows share a key
        and an event time, the event time alone gives the same rows. With a TTL, each row
        carries the time it expires: computed on the feature rows, usually far fewer than the
        entity rows, it makes the freshness test a comparison of two columns.
        """
        source = view.batch_source
        path = FileSource.get_uri_for_file_path(self.repo_path, source.path)
        event, created = source.timestamp_field, source.created_timestamp_column
        keys = view_join_keys(view)
        table_keys = [table_col for table_col, _ in keys]
        columns = ", ".join([*(quote_name(k) for k in table_keys), *(quote_name(f) for f in features)])
        stamp = f"{quote_name(event)}::TIMESTAMPTZ"
        rows = f"SELECT {columns}, {stamp} AS __fsml_event"
        ttl = _ttl_micros(view.ttl)
        if ttl is not None:
            rows += f", {stamp} + INTERVAL {ttl} MICROSECONDS AS __fsml_expires"
        paired = bool(created) and not _unique_events(path, tuple(table_keys), event)
        if paired and search:
            rows += f", {quote_name(created)}::TIMESTAMPTZ AS __fsml_created"
        elif paired:
            made = f"coalesce({quote_name(created)}::TIMESTAMPTZ, '-infinity'::TIMESTAMPTZ)"
            pair = f"{{'t': {stamp}, 'c': {made}}}"
            rows += f", {pair} AS __fsml_pair"
        relation = scan(path)
        where = [f"{quote_name(k)} IS NOT NULL" for k in table_keys] + [f"{stamp} IS NOT NULL"] if search else []
        oldest, newest = window
        if newest is not None:
            where.append(f"{stamp} <= {_time_literal(newest)}")
        if oldest is not None and ttl is not None:
            where.append(f"{stamp} >= {_time_literal(oldest)} - INTERVAL {ttl} MICROSECONDS")
        if self.part is not None and self.part.covers(k for _, k in keys):
            where.append(self.part.predicate(dict(keys)))
        return f"{rows} FROM {relation}" + (f" WHERE {' AND '.join(where)}" if where else ""), paired

    def persist(self, storage: Any, allow_overwrite: bool = False, timeout: int | None = None) -> None:
        raise NotImplementedError("saved datasets are not supported by the ASOF path; use stock Feast")


def _unique_events(path: str, keys: tuple[str, ...], event: str) -> bool:
    """Whether no two rows of the table share their keys and event time (checked once per
    version of its files: their names, sizes and modification times)."""
    try:
        version = tuple((f, os.stat(f).st_size, os.stat(f).st_mtime_ns) for f in parquet_files(path))
    except OSError:  # changed while we looked: no version to remember, so join on the pair
        return False
    return bool(version) and _unique_events_of(path, version, keys, event)


@lru_cache(maxsize=256)
def _unique_events_of(path: str, version: tuple, keys: tuple[str, ...], event: str) -> bool:
    columns = ", ".join(quote_name(c) for c in (*keys, event))
    query = f"SELECT count(*) = count(DISTINCT ({columns})) FROM {scan(path)}"
    return bool(duckdb.connect().sql(query).fetchall()[0][0])


def view_join_keys(view: Any) -> list[tuple[str, str]]:
    """(column in the feature table, column in the entity frame) per join key."""
    mapping = view.projection.join_key_map or {c.name: c.name for c in view.entity_columns}
    return list(mapping.items())


def _null_unless(column: pa.ChunkedArray, keep: pa.ChunkedArray) -> pa.ChunkedArray:
    """``column`` with nulls where ``keep`` is not true. For flat types with no offset the values
    stay in place and only the validity bitmap is replaced; other types are copied."""
    if [len(c) for c in column.chunks] != [len(c) for c in keep.chunks]:
        column, keep = column.combine_chunks(), keep.combine_chunks()
        column, keep = pa.chunked_array([column]), pa.chunked_array([keep])
    chunks = []
    for values, ok in zip(column.chunks, keep.chunks, strict=True):
        valid = pc.fill_null(pc.and_(ok, pc.is_valid(values)), False)
        flat = pa.types.is_primitive(values.type) or pa.types.is_string(values.type) or pa.types.is_binary(values.type)
        if flat and values.offset == 0 and valid.offset == 0 and len(values):
            buffers = values.buffers()
            chunks.append(pa.Array.from_buffers(values.type, len(values), [valid.buffers()[1], *buffers[1:]]))
        else:
            chunks.append(pc.if_else(valid, values, pa.scalar(None, values.type)))
    return pa.chunked_array(chunks, type=column.type)


def _ttl_micros(ttl: timedelta | None) -> int | None:
    """The TTL in microseconds; None when the view has none (Feast reads zero as none)."""
    if not ttl or ttl <= timedelta(0):
        return None
    return ttl // timedelta(microseconds=1)


def _utc_columns(table: pa.Table) -> pa.Table:
    """Every time column as UTC microseconds, as Feast's ``make_df_tzaware`` makes them (naive
    times are UTC) and DuckDB returns them. For microsecond columns that only relabels the
    column in Arrow: the stored values are already UTC instants, so nothing is copied, where
    Feast copies the whole frame (0.5-0.7 s at 10M rows). fsml's repos therefore set
    ``coerce_tz_aware: false``; with Feast's default the columns arrive as UTC."""
    for position, field in enumerate(table.schema):
        if pa.types.is_timestamp(field.type) and field.type != _UTC_MICROS:
            table = table.set_column(position, field.name, table[field.name].cast(_UTC_MICROS, safe=False))
    return table
