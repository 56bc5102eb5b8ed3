"""Parquet tables as DuckDB reads them: one file, or a directory of parts.

Tables that grow by appending (pushed rows in date partitions, feature tables built
incrementally) are directories of Parquet files; a reader takes every ``*.parquet`` below the
directory. Dot-files (temporary files of ``fsml.atomic``) and pending files are never read.
"""

from __future__ import annotations

import os


def quote_name(name: str) -> str:
    """A SQL identifier, quoted for DuckDB."""
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def parquet_files(path: str | os.PathLike[str]) -> list[str]:
    """The Parquet files of a table: the file itself, or every ``*.parquet`` below a directory."""
    if os.path.isdir(path):
        found = []
        for root, _, names in os.walk(path):
            found += [os.path.join(root, n) for n in names if n.endswith(".parquet") and not n.startswith(".")]
        return sorted(found)
    return [str(path)] if os.path.exists(path) else []


def scan(path: str | os.PathLike[str]) -> str:
    """A DuckDB relation reading a table (partition folders are not read as columns: the files
    carry every column)."""
    where = os.path.join(path, "**", "*.parquet") if os.path.isdir(path) else str(path)
    return f"read_parquet({literal(where)}, hive_partitioning = false, union_by_name = true)"


def scan_files(files: list[str]) -> str:
    """A DuckDB relation reading the given files."""
    return (
        f"read_parquet([{', '.join(literal(str(f)) for f in files)}], hive_partitioning = false, union_by_name = true)"
    )
