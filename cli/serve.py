"""``fsml serve`` runs the scoring API; ``fsml score`` scores a file in batch."""

from __future__ import annotations

import os
import shutil
from typing import Annotated

import typer
from fsml.cli.app import FEATURE_SERVICE_HELP, JSON_HELP, app, load_settings

from fsml.console import chunk_progress, emit


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Worker processes.")] = 1,
    feature_service: Annotated[
        list[str] | None,
        typer.Option(
            help="Model to host (repeat for several; the first answers /v1/predict); "
            "default FSML_SERVE_FEATURE_SERVICES, else FSML_FEATURE_SERVICE."
        ),
    ] = None,
) -> None:
    """Serve champions over HTTP: /v1/predict, /v1/models/{feature_service}/predict, /readyz, ..."""
    settings = load_settings()
    if feature_service:
        settings = settings.for_service(feature_service[0])
        settings = settings.model_copy(update={"serve_feature_services": list(dict.fromkeys(feature_service))})

    from fsml.serving.app import check_deployable
    from fsml.serving.lifeline import MASTER_ENV
    from fsml.serving.limits import HTTP_PROTOCOL

    check_deployable(settings)
    from fsml.featurestore import describe_service, open_store

    store = open_store(settings)  # an unknown or unusable feature service is one error line, here
    for name in settings.served_services:
        describe_service(store, name)
    settings.export()
    os.environ["FSML_FEATURE_SERVICE"] = settings.feature_service  # for the worker processes
    os.environ["FSML_SERVE_FEATURE_SERVICES"] = ",".join(settings.served_services)
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
        access_log=False,  # fsml's own access log (FSML_ACCESS_LOG) has the request id and route
        log_level="warning",
        log_config=None,  # uvicorn's messages go through fsml's handler (JSON lines)
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
            help="Parquet file, directory or glob: the fields of the model's predict request; its time required.",
        ),
    ],
    output: Annotated[
        str, typer.Option("--output", help="Parquet file to write (a directory for a directory or glob), atomically.")
    ],
    overwrite: Annotated[bool, typer.Option(help="Replace existing output files.")] = False,
    feature_service: Annotated[str | None, typer.Option(help=FEATURE_SERVICE_HELP)] = None,
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Score files with point-in-time features as of each row's time and the champion (in slices
    of FSML_SCORE_CHUNK_ROWS rows; on Ray with FSML_ENGINE=ray)."""
    from pathlib import Path

    settings = load_settings().for_service(feature_service)

    from fsml.serving.batch import score_file

    with chunk_progress("score") as progress:
        result = score_file(settings, input, Path(output), progress=progress, overwrite=overwrite)
    emit(result, as_json)
