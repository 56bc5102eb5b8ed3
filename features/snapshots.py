"""Snapshot views: a SQL file per view (its ``fsml.sql`` tag, relative to the feature repo),
run by DuckDB over the repo's sources by name.

The SQL is the example's; this runner is generic. It sees every push source as its pushed rows
(registered by the build), every other file source of the repo as its file, and the parameters
``$start_us`` / ``$end_us`` (the first and last snapshot instant, epoch µs, both included),
``$day``, ``$hour`` and ``$created``.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from fsml.features.sources import Repo

from fsml.errors import FsmlError
from fsml.tables import parquet_files, quote_name, scan, table_dir

HOUR_US = 3_600_000_000
DAY_US = 24 * HOUR_US


def sql_of(repo_path: Path, view: Any) -> str:
    path = repo_path / view.tags["fsml.sql"]
    try:
        return path.read_text()
    except OSError:
        raise FsmlError(f"view {view.name!r}: cannot read its SQL {path} (tag fsml.sql)") from None


def reference_sources(repo: Repo) -> list[Any]:
    """File sources read by SQL: neither a push source's rows nor a table the build writes."""
    from feast.infra.offline_stores.file_source import FileSource

    views = (*repo.feature_views, *repo.stream_views)
    produced = {table_dir(repo.path(v.batch_source.path)) for v in views if v.batch_source}
    pushed = {s.path for s in repo.sources.values()}
    return [
        s
        for s in repo.data_sources
        if isinstance(s, FileSource)
        and table_dir(repo.path(s.path)) not in produced | pushed
        and s.name not in repo.sources
    ]


def register_references(con: duckdb.DuckDBPyConnection, repo: Repo) -> None:
    """Each reference file source as a view by its name; a missing or unreadable file is named."""
    for source in reference_sources(repo):
        path = repo.path(source.path)
        if not parquet_files(path):
            raise FsmlError(f"missing reference table {path} (data source {source.name!r})")
        try:
            con.execute(f"CREATE OR REPLACE VIEW {quote_name(source.name)} AS SELECT * FROM {scan(path)}")
        except duckdb.Error as exc:
            raise FsmlError(f"cannot read {path} (data source {source.name!r}): {str(exc).splitlines()[0]}") from None


def run(
    con: duckdb.DuckDBPyConnection, repo_path: Path, view: Any, first: int, last: int, created: datetime
) -> pa.Table:
    """The view's rows for the snapshot instants ``first`` to ``last`` (µs, included)."""
    sql = sql_of(repo_path, view)
    params = {"start_us": first, "end_us": last, "day": DAY_US, "hour": HOUR_US, "created": created}
    try:
        return con.sql(sql, params={k: v for k, v in params.items() if f"${k}" in sql}).to_arrow_table()
    except duckdb.Error as exc:
        raise FsmlError(f"view {view.name!r}: its SQL failed: {str(exc).strip().splitlines()[0]}") from None
