"""``fsml monitor``, ``fsml retrain`` and ``fsml replay``: the loop that keeps models healthy."""

from __future__ import annotations

import contextlib
import threading
from typing import Annotated

import typer
from fsml.cli.app import FEATURE_SERVICE_HELP, JSON_HELP, app, load_settings, parse_time

from fsml.console import chunk_progress, emit, setup_logging

monitor_app = typer.Typer(help="Drift and performance monitoring.", no_args_is_help=True)
app.add_typer(monitor_app, name="monitor")


@app.command()
def replay(
    from_day: Annotated[int, typer.Option(min=0, help="First day of the data to replay (0 = first day).")],
    to_day: Annotated[int | None, typer.Option(min=1, help="Day to stop before; default: the end.")] = None,
    url: Annotated[str, typer.Option(help="Scoring service.")] = "http://127.0.0.1:8000",
    batch: Annotated[int, typer.Option(min=1, max=10_000, help="Rows per /v1/predict/batch call.")] = 500,
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Send the generated transactions of those days to the service as they happened."""
    settings = load_settings()

    from fsml.monitoring.replay import replay as run_replay

    with chunk_progress("replay") as progress:
        result = run_replay(settings, from_day, to_day, url, batch, progress)
    emit(result, as_json)


@monitor_app.command("run")
def monitor_run(
    as_of: Annotated[str | None, typer.Option(help="Judge as of this time (ISO); default now.")] = None,
    source: Annotated[str, typer.Option(help="'logs' (prediction log) or 'offline' (batch models).")] = "logs",
    feature_service: Annotated[str | None, typer.Option(help=FEATURE_SERVICE_HELP)] = None,
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Compare recent traffic with the champion's training reference; write an HTML report."""
    settings = load_settings().for_service(feature_service)
    when = parse_time(as_of, "--as-of")
    if source not in ("logs", "offline"):
        raise typer.BadParameter("must be 'logs' or 'offline'", param_hint="--source")

    from fsml.monitoring.monitor import run_monitor

    with chunk_progress("monitor") as progress:
        progress("reading the window", 0, 1)
        summary = run_monitor(settings, when, source)
    emit({k: v for k, v in summary.items() if k != "features"}, as_json)


@monitor_app.command("watch")
def monitor_watch(
    every: Annotated[str, typer.Option(help="Time between rounds: 30s, 15m, 1h, 1d.")] = "1h",
    rounds: Annotated[int | None, typer.Option(min=1, help="Stop after this many rounds.")] = None,
    feature_service: Annotated[str | None, typer.Option(help=FEATURE_SERVICE_HELP)] = None,
    metrics_port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="Serve Prometheus metrics on this port meanwhile.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP + " (when the rounds end)")] = False,
) -> None:
    """Monitor, check triggers (drift, performance, schedule, new code), retrain; repeat."""
    settings = load_settings().for_service(feature_service)
    setup_logging(json_lines=settings.log_format == "json")  # a long-running service: its logs are collected

    from fsml.monitoring.watch import parse_duration, watch

    period = parse_duration(every)
    done: list[dict] = []
    if metrics_port is not None:
        from fsml.monitoring.metrics import serve as serve_metrics

        serve_metrics(settings, metrics_port)
    with contextlib.suppress(KeyboardInterrupt):
        done = watch(settings, period, rounds)
    if as_json:
        emit({"feature_service": settings.feature_service, "rounds": done}, as_json)


@app.command()
def retrain(
    reason: Annotated[str, typer.Option(help="Why: recorded with the run and in the trigger log.")] = "manual",
    as_of: Annotated[str | None, typer.Option(help="Labels known at this time (ISO); default now.")] = None,
    feature_service: Annotated[str | None, typer.Option(help=FEATURE_SERVICE_HELP)] = None,
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Retrain now: features, online store, training, gate against the champion, reload."""
    settings = load_settings().for_service(feature_service)
    when = parse_time(as_of, "--as-of")

    from fsml.monitoring.retrain import retrain as run_retraining

    with chunk_progress("retrain") as progress:
        outcome = run_retraining(settings, reason=f"manual: {reason}", as_of=when, progress=progress)
    emit(outcome, as_json)


@monitor_app.command("metrics")
def monitor_metrics(
    port: Annotated[int | None, typer.Option(min=1, max=65535, help="Serve over HTTP; default: print once.")] = None,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "0.0.0.0",
) -> None:
    """Prometheus metrics of the monitoring loop (drift, performance, retraining), from its records."""
    settings = load_settings()

    from fsml.monitoring import metrics

    if port is None:
        print(metrics.exposition(settings), end="")
        return
    setup_logging(json_lines=settings.log_format == "json")
    metrics.serve(settings, port, host)
    with contextlib.suppress(KeyboardInterrupt):
        threading.Event().wait()
