"""Feast extension points used by fsml: custom online (and later offline) store classes.

They are named in ``feature_repo/feature_store.yaml`` so that the ``feast`` CLI and SDK keep
working on the same repository.
"""

from pathlib import Path


def quote_name(name: str) -> str:
    """A SQL identifier, quoted for DuckDB (here, not in a store module: no Feast import)."""
    return '"' + name.replace('"', '""') + '"'


def parquet_files(path: str | Path) -> str:
    """What DuckDB's ``read_parquet`` reads for a Feast file source: the file, or every Parquet
    file under a directory (a partitioned data set)."""
    return str(Path(path) / "**" / "*.parquet") if Path(path).is_dir() else str(path)
