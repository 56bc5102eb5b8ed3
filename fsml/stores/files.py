"""Feast's own reads of file sources, as every other part of Feast resolves them.

Feast's DuckDB offline store reads a relative Parquet path from the working directory, where
its writer, its registry and its other stores resolve it against the repo; and DuckDB cannot
cast a zoned nanosecond time (``TIMESTAMPTZ_NS``, what pandas writes by default) to the naive
time Feast's ibis code compares with. Both break Feast's materialization and retrieval of such
repos from any other directory. The reader here resolves the path and reads those times as
microseconds; everything else is Feast's code, unchanged.
"""

from __future__ import annotations

import copy
import inspect
from typing import Any

from feast.data_format import DeltaFormat
from feast.infra.offline_stores.duckdb import _read_data_source, _write_data_source
from feast.infra.offline_stores.file_source import FileSource
from feast.infra.offline_stores.offline_store import OfflineStore

from fsml.stores import parquet_files


def read_in_repo(data_source: Any, repo_path: str) -> Any:
    """Feast's DuckDB reader, given the source's path resolved against the repo (a directory: the
    Parquet files under it)."""
    import ibis.expr.datatypes as dt

    if isinstance(data_source, FileSource) and data_source.path:
        resolved = FileSource.get_uri_for_file_path(repo_path or None, data_source.path)
        if "://" not in resolved and not isinstance(data_source.file_format, DeltaFormat):
            resolved = parquet_files(resolved)
        if resolved != data_source.path:
            data_source = copy.copy(data_source)
            data_source.file_options = copy.copy(data_source.file_options)
            data_source.file_options.uri = resolved
    table = _read_data_source(data_source, repo_path)
    utc = dt.Timestamp(timezone="UTC", scale=6)
    nanos = {  # ibis does not know the type: it reads as "unknown", with DuckDB's name attached
        name: table[name].cast(utc)
        for name, kind in table.schema().items()
        if kind.is_unknown() and str(getattr(kind, "raw_type", "")) == "TIMESTAMPTZ_NS"
    }
    return table.mutate(**nanos) if nanos else table


def ibis_options(config: Any) -> dict[str, Any]:
    """The reader, writer and staging options Feast's ibis functions take."""
    return {
        "data_source_reader": read_in_repo,
        "data_source_writer": _write_data_source,
        "staging_location": config.offline_store.staging_location,
        "staging_location_endpoint_override": config.offline_store.staging_location_endpoint_override,
    }


def through_ibis(method: str, function: Any) -> staticmethod:
    """An offline store method (named as on Feast's ``OfflineStore``) that calls Feast's ibis
    ``function`` with the arguments it was given, however they were passed, and ``read_in_repo``."""
    signature = inspect.signature(getattr(OfflineStore, method))

    def call(*args: Any, **kwargs: Any) -> Any:
        arguments = signature.bind(*args, **kwargs).arguments
        return function(**arguments, **ibis_options(arguments["config"]))

    call.__name__ = method
    return staticmethod(call)
