"""Feast extension points used by fsml: custom online (and later offline) store classes.

They are named in ``feature_repo/feature_store.yaml`` so that the ``feast`` CLI and SDK keep
working on the same repository.
"""


def quote_name(name: str) -> str:
    """A SQL identifier, quoted for DuckDB (here, not in a store module: no Feast import)."""
    return '"' + name.replace('"', '""') + '"'
