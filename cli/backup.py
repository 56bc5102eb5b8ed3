"""``fsml backup`` and ``fsml restore``: FSML_HOME's state in one archive."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from fsml.cli.app import JSON_HELP, app, load_settings

from fsml.console import emit, steps


@app.command()
def backup(
    output: Annotated[
        str | None, typer.Option(help="Archive to write; default FSML_HOME/backups/fsml-<time>.tar.gz.")
    ] = None,
    data: Annotated[bool, typer.Option("--data", help="Include the raw and feature data (can be large).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Archive the MLflow store, Feast registries, prediction logs and monitor records, while services run."""
    settings = load_settings()

    from fsml.backup import backup as run_backup

    with steps("backup", 1) as step:
        step(str(settings.home))
        result = run_backup(settings, Path(output) if output else None, data)
    emit(result, as_json)


@app.command()
def restore(
    archive: Annotated[str, typer.Argument(help="Archive written by fsml backup.")],
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Restore a backup into an empty FSML_HOME, moving recorded paths to the new home."""
    settings = load_settings()

    from fsml.backup import restore as run_restore

    with steps("restore", 1) as step:
        step(str(settings.home))
        result = run_restore(settings, Path(archive))
    emit(result, as_json)
