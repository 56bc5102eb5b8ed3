"""``fsml monitor``, ``fsml retrain`` and ``fsml replay``: the loop that keeps models healthy."""

from __future__ import annotations

import contextlib
import threading
from typing import Annotated

import typer
from fsml.cli.app import FEATURE_SERVICE_HELP, JSON_HELP, ConfigError, app, load_settings, parse_time

from fsml.console import chunk_progress, emit, err, setup_logging

monitor_app = typer.Typer(help="Drift and performance monitoring.", no_args_is_help=True)
app.add_typer(monitor_app, name="monitor")


@app.command()
def replay(
    start: Annotated[str | None, typer.Option(help="First moment to replay (ISO).")] = None,
    end: Annotated[str | None, typer.Option(help="Moment to stop before (ISO).")] = None,
    from_day: Annotated[int | None, typer.Option(min=0, help="Or: first day of the generated data (0: first).")] = None,
    to_day: Annotated[int | None, typer.Option(min=1, help="Or: day of the generated data to stop before.")] = None,
    labels_until: Annotated[str | None, typer.Option(help="Push labels known before this (ISO); default: end.")] = None,
    url: Annotated[str, typer.Option(help="Scoring service.")] = "http://127.0.0.1:8000",
    batch: Annotated[int, typer.Option(min=1, max=10_000, help="Rows per /v1/predict/batch call.")] = 500,
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Send the rows of a time range to the service as live traffic: scored and recorded in one
    call, labels pushed as they mature, snapshots refreshed daily."""
    settings = load_settings()
    first, last = _window(settings, start, end, from_day, to_day)

    from fsml.monitoring.replay import replay as run_replay

    with chunk_progress("replay") as progress:
        result = run_replay(
            settings, first, last, url, batch, progress, labels_until=parse_time(labels_until, "--labels-until")
        )
    emit(result, as_json)


def _window(settings, start, end, from_day, to_day):  # noqa: ANN001, ANN202
    """--start/--end, or days counted from the start of the generated data (data/raw/meta.json)."""
    import json
    from datetime import timedelta

    if from_day is None and to_day is None:
        first, last = parse_time(start, "--start"), parse_time(end, "--end")
        if first is None or last is None:
            raise ConfigError("give --start and --end, or --from-day (and --to-day) for generated data")
        return first, last
    try:
        meta = json.loads((settings.raw_dir / "meta.json").read_text())
    except (FileNotFoundError, ValueError):
        raise ConfigError(f"--from-day needs the generated data's {settings.raw_dir / 'meta.json'}") from None
    origin, stop = parse_time(meta["start"], "meta start"), parse_time(meta["end"], "meta end")
    return origin + timedelta(days=from_day or 0), (origin + timedelta(days=to_day) if to_day else stop)


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
    hidden = ("features",) if as_json else ("features", "segments")  # people read segments in the report
    emit({k: v for k, v in summary.items() if k not in hidden}, as_json)


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
    if outcome.get("warning"):
        err.print(f"[yellow]warning:[/yellow] {outcome['warning']}", highlight=False, soft_wrap=True)
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
