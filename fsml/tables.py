"""Parquet tables as DuckDB reads them: one file, a directory of parts, or a glob of parts.

Tables that grow by appending (pushed rows in date partitions, feature tables built
incrementally) are files of parts in a directory; a repo names them with a glob such as
``features/merchant_risk/*.parquet`` (stock Feast reads that too), and a reader takes every
matching file. Dot-files (temporary files of ``fsml.atomic``) and pending files never match.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

from fsml.stores import quote_name

WILDCARDS = ("*", "?", "[")
__all__ = ["quote_name", "literal", "is_glob", "table_dir", "parquet_files", "scan", "scan_files"]


def literal(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def is_glob(path: str | os.PathLike[str]) -> bool:
    return any(c in str(path) for c in WILDCARDS)


def table_dir(path: str | os.PathLike[str]) -> Path:
    """The directory a table's parts live in: the path without its wildcard components."""
    here = Path(path)
    while is_glob(here):
        here = here.parent
    return here


def parquet_files(path: str | os.PathLike[str]) -> list[str]:
    """The Parquet files of a table: those matching a glob, every ``*.parquet`` below a
    directory, or the file itself."""
    if is_glob(path):
        return sorted(f for f in glob.glob(str(path), recursive=True) if not Path(f).name.startswith("."))
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
