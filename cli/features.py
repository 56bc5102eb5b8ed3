"""``fsml features``: build the offline tables, register them in Feast, load the online store."""

from __future__ import annotations

from typing import Annotated

import typer
from fsml.cli.app import JSON_HELP, app, features_app, load_settings, parse_time

from fsml.console import chunk_progress, emit, plain, steps


@features_app.command("build")
def build(
    until: Annotated[str | None, typer.Option(help="Daily snapshots up to this time (ISO); default now.")] = None,
    full: Annotated[bool, typer.Option(help="Recompute everything (and compact the parts).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Compute the feature tables from the pushed rows with DuckDB, incrementally; validate
    before publishing."""
    settings = load_settings()
    when = parse_time(until, "--until")

    from fsml.features.build import build_features

    with steps("features build", 7) as step:
        result = build_features(settings, until=when, full=full, progress=step)
    emit(result.summary(), as_json)


@features_app.command("apply")
def apply(as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False) -> None:
    """Register the feature repo's entities, views and services (as `feast apply`)."""
    settings = load_settings()

    from fsml.featurestore import apply_repo

    with steps("features apply", 1) as step:
        step(f"project {settings.feast_project}")
        diff = apply_repo(settings)
    changes = [plain(line).strip() for line in diff.splitlines() if line.strip()]
    emit(
        {"project": settings.feast_project, "repo": str(settings.feature_repo), "changes": changes},
        as_json,
    )


@features_app.command("materialize")
def materialize(
    start: Annotated[str | None, typer.Option(help="Start time (ISO); default: end minus each view's TTL.")] = None,
    end: Annotated[str | None, typer.Option(help="End time (ISO); default: now.")] = None,
    incremental: Annotated[bool, typer.Option(help="Start each view where its last materialization ended.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Load feature values of [start, end] from the offline tables into Redis, in chunks."""
    settings = load_settings()
    window = parse_time(start, "--start"), parse_time(end, "--end")

    from fsml.serving.materialize import materialize as load_online

    with chunk_progress("features materialize") as progress:
        result = load_online(settings, *window, incremental=incremental, progress=progress)
    emit(result.summary(), as_json)


@app.command()
def ui(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8888,
) -> None:
    """Feast's web UI on the configured feature repo and environment (as `feast ui`)."""
    settings = load_settings()
    settings.export()  # feature_store.yaml reads FSML_HOME, FSML_ENV and REDIS_URL

    from fsml.featurestore import open_store

    open_store(settings).serve_ui(host=host, port=port)
