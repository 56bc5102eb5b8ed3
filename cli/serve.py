"""``fsml serve`` runs the scoring API; ``fsml score`` scores a file in batch."""

from __future__ import annotations

import os
import shutil
from typing import Annotated

import typer
from fsml.cli.app import JSON_HELP, app, load_settings

from fsml.console import chunk_progress, emit


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Worker processes.")] = 1,
) -> None:
    """Serve the champion over HTTP: /v1/predict, /v1/predict/batch, /readyz, /metrics, ..."""
    settings = load_settings()

    from fsml.serving.app import check_deployable
    from fsml.serving.lifeline import MASTER_ENV
    from fsml.serving.limits import HTTP_PROTOCOL

    check_deployable(settings)
    settings.export()
    if workers > 1:  # one metrics store for all workers (prometheus-client multiprocess mode)
        directory = settings.home / "run" / f"prometheus-{port}"
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
        os.environ["FSML_METRICS_MULTIPROCESS"] = "1"
        os.environ[MASTER_ENV] = str(os.getpid())  # workers end with this process
    import uvicorn

    uvicorn.run(
        "fsml.serving.app:create_app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http=HTTP_PROTOCOL,  # uvicorn's httptools protocol with a header deadline (serving.limits)
        access_log=False,
        log_level="warning",
        proxy_headers=False,
        server_header=False,
        date_header=False,
        timeout_graceful_shutdown=10,
    )


@app.command()
def score(
    input: Annotated[
        str,
        typer.Option(
            "--input",
            help="Parquet file, directory or glob: the fields of /v1/predict; timestamp required.",
        ),
    ],
    output: Annotated[
        str, typer.Option("--output", help="Parquet file to write (a directory for a directory or glob), atomically.")
    ],
    overwrite: Annotated[bool, typer.Option(help="Replace existing output files.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Score files with point-in-time features as of each row's timestamp and the champion
    (in slices of FSML_SCORE_CHUNK_ROWS rows; on Ray with FSML_ENGINE=ray)."""
    from pathlib import Path

    settings = load_settings()

    from fsml.serving.batch import score_file

    with chunk_progress("score") as progress:
        result = score_file(settings, input, Path(output), progress=progress, overwrite=overwrite)
    emit(result, as_json)
