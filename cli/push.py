"""``fsml push``: a file of rows into a push source, through the same code as the push API."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from fsml.cli.app import JSON_HELP, app, load_settings, parse_time

from fsml.console import chunk_progress, emit


@app.command()
def push(
    source: Annotated[str, typer.Option("--source", help="Push source of the feature repo, e.g. transactions.")],
    input: Annotated[str, typer.Option("--input", help="Parquet or CSV file with the source's columns.")],
    offline: Annotated[
        bool, typer.Option(help="Offline store only (a backfill); then `features materialize`.")
    ] = False,
    before: Annotated[str | None, typer.Option(help="Only rows whose event time is earlier (ISO).")] = None,
    chunk_rows: Annotated[int | None, typer.Option(min=1, help="Rows per request; default FSML_PUSH_MAX_ROWS.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Push rows in chunks, each checked, deduplicated and durable before the next; a rerun
    after a failure counts what was pushed already as duplicates."""
    settings = load_settings()
    until = parse_time(before, "--before")

    from fsml.serving.push import push_file

    with chunk_progress("push") as progress:
        result = push_file(settings, source, Path(input), offline, chunk_rows, progress, before=until)
    emit(result, as_json)
