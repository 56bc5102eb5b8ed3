"""``fsml train``, ``fsml promote`` and ``fsml reproduce``: the model lifecycle in MLflow."""

from __future__ import annotations

from typing import Annotated

import typer
from fsml.cli.app import FEATURE_SERVICE_HELP, JSON_HELP, app, load_settings, parse_time

from fsml.console import chunk_progress, emit, steps


@app.command()
def train(
    feature_service: Annotated[str | None, typer.Option(help=FEATURE_SERVICE_HELP)] = None,
    as_of: Annotated[str | None, typer.Option(help="Labels known at this time (ISO); default now.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Build a point-in-time training set, train LightGBM, evaluate and register a challenger."""
    settings = load_settings().for_service(feature_service)
    when = parse_time(as_of, "--as-of")

    from fsml.training.pipeline import train as run_training

    with chunk_progress("train") as progress:
        outcome = run_training(settings, settings.feature_service, when, progress=progress)
    emit(outcome.summary(), as_json)


@app.command()
def promote(
    version: Annotated[str | None, typer.Option(help="Version to consider; default the challenger.")] = None,
    force: Annotated[bool, typer.Option(help="Promote whatever the comparison says.")] = False,
    as_of: Annotated[str | None, typer.Option(help="End of the evaluation window (ISO); default now.")] = None,
    feature_service: Annotated[str | None, typer.Option(help=FEATURE_SERVICE_HELP)] = None,
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Make the challenger the champion if it is at least as good on the latest labelled window."""
    settings = load_settings().for_service(feature_service)
    when = parse_time(as_of, "--as-of")

    from fsml.training.promote import promote as run_promotion

    with steps("promote", 1) as step:
        step("scoring challenger and champion")
        decision = run_promotion(settings, version, force, when)
    emit(decision.summary(), as_json)


@app.command()
def rollback(
    reason: Annotated[str, typer.Option(help="Why: recorded in the alias history and the trigger log.")] = "manual",
    feature_service: Annotated[str | None, typer.Option(help="Model of this feature service.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Restore the previous champion; running services follow the alias without a restart."""
    settings = load_settings().for_service(feature_service)

    from fsml.events import record
    from fsml.registry import rollback as run_rollback

    outcome = run_rollback(settings, feature_service, reason)
    record(settings, {"event": "rollback", **outcome})
    emit(outcome, as_json)


@app.command()
def reproduce(
    run_id: Annotated[str, typer.Argument(help="MLflow run id of a training run.")],
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Rebuild a run's training set and model from its record; report what differs."""
    settings = load_settings()

    from fsml.training.reproduce import reproduce as run_reproduction

    with steps("reproduce", 1) as step:
        step(f"rebuilding run {run_id}")
        result = run_reproduction(settings, run_id)
    emit(result, as_json)
