"""The platform's main job end to end, on the synthetic data set with drift.

The data has data and concept drift from ``DRIFT_DAY``. What happened before it is pushed to
the offline store (a backfill), a champion is trained on what was known then and served; a new
card shows its window features moving with pushed transactions and falling back as time
passes; the days after the drift are replayed as live traffic (each transaction scored and
recorded in one call, labels pushed as they mature, snapshots refreshed daily); the monitor
flags the drift and the loss of performance; retraining produces a challenger that beats the
champion on the same recent window; it is promoted and the running service switches to it.
Each step calls the same function as its CLI command, is timed, and says where its result is.
Without ``REDIS_URL`` the demo runs a private ``redis-server`` (append-only, fsync always) with
its files under ``FSML_HOME/redis``; the service runs as a real process, called over HTTP.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pandas as pd
from fsml.examples.fraud.synthetic import GeneratorConfig
from pydantic import SecretStr
from rich.table import Table

from fsml.console import out, steps
from fsml.redis_server import online_store
from fsml.settings import Settings
from fsml.timing import timed

log = logging.getLogger(__name__)

DAYS, DRIFT_DAY = 110, 85
CONFIG = GeneratorConfig(days=DAYS, drift_start_day=DRIFT_DAY)


@dataclass
class Step:
    name: str
    run: Callable[[], Any]
    where: Callable[[Any], str]


def run_demo(settings: Settings) -> dict[str, Any]:
    if settings.api_key is None:  # the demo's own service gets a throw-away admin key
        settings = settings.model_copy(update={"api_key": SecretStr(secrets.token_urlsafe(16))})
    with online_store(settings) as settings:
        settings.export()
        return _run(settings)


def _run(settings: Settings) -> dict[str, Any]:
    from fsml.examples.fraud import live
    from fsml.examples.fraud.history import push_history
    from fsml.examples.fraud.synthetic import generate, save
    from fsml.features.build import build_features
    from fsml.monitoring.monitor import run_monitor
    from fsml.monitoring.replay import replay
    from fsml.monitoring.retrain import retrain
    from fsml.monitoring.triggers import automatic_triggers, describe
    from fsml.serving.batch import score_file
    from fsml.serving.materialize import materialize
    from fsml.serving.process import ServerProcess
    from fsml.training.pipeline import train
    from fsml.training.promote import promote

    from fsml.featurestore import apply_repo

    drift_at = CONFIG.start + timedelta(days=DRIFT_DAY)
    batch_dir = settings.data_dir / "batch"
    server = ServerProcess(settings)
    loop = settings.model_copy(update={"service_url": server.url})
    results: dict[str, Any] = {}
    plan = [
        Step(
            "generate data",
            lambda: save(generate(CONFIG), CONFIG, settings.raw_dir),
            lambda m: (
                f"{settings.raw_dir} ({m['rows']['transactions']:,} transactions, fraud rate "
                f"{m['fraud_rate']:.2%}, drift from day {DRIFT_DAY} of {DAYS})"
            ),
        ),
        Step(
            "register features",
            lambda: apply_repo(settings),
            lambda _: f"{settings.home / 'feast'} (Feast project {settings.feast_project})",
        ),
        Step(
            "push history",
            lambda: push_history(settings, drift_at),
            lambda r: (
                f"{settings.data_dir / 'events'} ({r['transactions']['accepted']:,} transactions and "
                f"{r['labels']['accepted']:,} labels known before day {DRIFT_DAY}, offline)"
            ),
        ),
        Step(
            "build features",
            lambda: build_features(settings, until=drift_at),
            lambda r: f"{r.directory} ({sum(r.tables.values()):,} rows, {len(r.tables)} tables, {r.mode})",
        ),
        Step(
            "train champion",
            lambda: train(settings, as_of=drift_at, reason="demo: before the drift"),
            lambda o: (
                f"MLflow run {o.registered.run_id}, {o.registered.model_name} v{o.registered.version} "
                f"as of day {DRIFT_DAY}; report {o.report}"
            ),
        ),
        Step(
            "promote",
            lambda: promote(settings, as_of=drift_at),
            lambda d: f"champion v{d.champion_version} ({d.reason})",
        ),
        Step(
            "materialize",
            lambda: materialize(settings, end=drift_at),
            lambda r: (
                f"{settings.redis_url} ({r.chunks} chunks of {len(r.views)} views and the recent events of "
                f"{sum(r.windows.values()):,} customers, up to day {DRIFT_DAY})"
            ),
        ),
        Step("start service", server.start, lambda s: f"{s.url} (log {s.log_path})"),
        Step(
            "predict over HTTP",
            lambda: _predict(settings, server.url, drift_at),
            lambda rows: f"{len(rows)} answers from {server.url}/v1/predict (below)",
        ),
        Step(
            "live windows",
            lambda: live.walk(settings, server.url, drift_at),
            lambda steps: f"customer {live.CUSTOMER}: {len(steps)} requests over a week (below)",
        ),
        Step(
            "replay traffic",
            lambda: replay(settings, drift_at, CONFIG.end, server.url, labels_until=CONFIG.end),
            lambda r: (
                f"days {DRIFT_DAY}-{DAYS}: {r['sent']:,} transactions scored and recorded ({r['failed']} failed, "
                f"{r['requests_per_second']:.0f}/s), {r['labels_pushed']:,} labels pushed, "
                f"{r['daily_refreshes']} daily refreshes; log {settings.prediction_log_dir}"
            ),
        ),
        Step(
            "batch score a day",
            lambda: score_file(
                settings, _one_day(settings, batch_dir, drift_at), batch_dir / "scored.parquet", overwrite=True
            ),
            lambda r: (
                f"{r['output']} ({r['rows_scored']:,} rows scored, {r['rows_rejected']} rejected, "
                f"model v{r['model_version']})"
            ),
        ),
        Step(
            "monitor",
            lambda: _flushed_then(settings, lambda: run_monitor(settings)),
            lambda m: f"{m['report']} (action: {m['action']})",
        ),
        Step(
            "retrain",
            lambda: retrain(
                loop, reason=describe(automatic_triggers(settings, results["monitor"], pd.Timestamp.now(tz="UTC")))
            ),
            lambda r: f"challenger v{r['challenger_version']}: {r['decision']}",
        ),
        Step(
            "predict again",
            lambda: _predict(settings, server.url, drift_at),
            lambda rows: f"served by v{rows[0]['model']['version']}, no restart",
        ),
    ]
    timings: dict[str, float] = {}
    try:
        with steps("demo", len(plan)) as start:
            for step in plan:
                start(step.name)
                with timed(timings, step.name):
                    results[step.name] = step.run()
    finally:
        server.stop()
    _print_summary(settings, plan, results, timings)
    return results


def _flushed_then(settings: Settings, run: Callable[[], Any]) -> Any:
    """Give the service's prediction log one flush interval to reach the disk, then run."""
    import time

    time.sleep(settings.log_flush_seconds + 1)
    return run()


def _predict(settings: Settings, url: str, day: Any) -> list[dict[str, Any]]:
    """New transactions as an application would send them, on ``day``."""
    import httpx

    tx = pd.read_parquet(settings.raw_dir / "transactions.parquet")
    tx = tx[tx["timestamp"] < day]
    merchants = pd.read_parquet(settings.raw_dir / "merchants.parquet")
    end = pd.Timestamp(day)
    regular = tx.groupby("customer_id").agg(
        n=("amount", "size"), amount=("amount", "median"), merchant=("merchant_id", "last")
    )
    busy = regular.sort_values("n").index[-3:]
    risky = merchants[merchants["risk_level"] == "high"]["merchant_id"].iloc[0]
    cases = [
        (
            "usual purchase",
            busy[0],
            regular.loc[busy[0], "merchant"],
            regular.loc[busy[0], "amount"],
            end + pd.Timedelta(hours=14),
        ),
        (
            "usual purchase",
            busy[1],
            regular.loc[busy[1], "merchant"],
            regular.loc[busy[1], "amount"],
            end + pd.Timedelta(hours=15),
        ),
        (
            "large, 3 a.m., risky merchant",
            busy[2],
            risky,
            20 * regular.loc[busy[2], "amount"],
            end + pd.Timedelta(hours=3),
        ),
        ("unknown customer", 10_000_000, risky, 250.0, end + pd.Timedelta(hours=3)),
    ]
    answers = []
    with httpx.Client(base_url=url, timeout=10) as client:
        for label, customer, merchant, amount, when in cases:
            body = {
                "customer_id": int(customer),
                "merchant_id": int(merchant),
                "amount": round(float(amount), 2),
                "timestamp": when.isoformat(),
            }
            reply = client.post("/v1/predict", json=body)
            reply.raise_for_status()
            answers.append({**body, "case": label, **reply.json()})
    return answers


def _one_day(settings: Settings, batch_dir, day: Any) -> Any:  # noqa: ANN001
    """The transactions of ``day`` as a batch-scoring input file."""
    tx = pd.read_parquet(settings.raw_dir / "transactions.parquet")
    start = pd.Timestamp(day)
    rows = tx[(tx["timestamp"] >= start) & (tx["timestamp"] < start + pd.Timedelta(days=1))]
    batch_dir.mkdir(parents=True, exist_ok=True)
    path = batch_dir / f"day_{start:%Y%m%d}.parquet"
    rows[["transaction_id", "customer_id", "merchant_id", "amount", "timestamp"]].to_parquet(path, index=False)
    return path


def _print_summary(settings: Settings, plan: list[Step], results: dict[str, Any], timings: dict[str, float]) -> None:
    table = Table(title="fsml demo")
    table.add_column("step")
    table.add_column("seconds", justify="right")
    table.add_column("result")
    for step in plan:
        table.add_row(step.name, f"{timings[step.name]:.1f}", step.where(results[step.name]))
    out.print(table)
    answers = Table(title="POST /v1/predict")
    for column in (
        "case",
        "customer",
        "merchant",
        "amount",
        "score",
        "decision",
        "missing",
        "stale",
    ):
        answers.add_column(column, justify="right")
    for a in results["predict over HTTP"]:
        answers.add_row(
            a["case"],
            str(a["customer_id"]),
            str(a["merchant_id"]),
            f"{a['amount']:.2f}",
            f"{a['score']:.4f}",
            a["decision"],
            str(len(a["features"]["missing"])),
            str(len(a["features"]["stale"])),
        )
    out.print(answers)
    from fsml.examples.fraud import live

    out.print(live.table(results["live windows"]))
    metrics = results["train champion"].trained.bundle.card.metrics
    out.print(
        f"champion (as of day {DRIFT_DAY}) test PR-AUC {metrics['test_pr_auc']:.3f} against a base fraud rate of "
        f"{metrics['test_positive_rate']:.2%} (ROC-AUC {metrics['test_roc_auc']:.3f}, "
        f"recall at 1% FPR {metrics['test_recall_at_1pct_fpr']:.2f})"
    )
    monitor, retrained = results["monitor"], results["retrain"]
    performance = monitor["performance"]
    out.print(
        f"monitor ({monitor['seconds']:.1f} s): drift in {len(monitor['drifted_features'])} features "
        f"({', '.join(monitor['drifted_features'])}); champion PR-AUC on replayed traffic "
        f"{performance.get('pr_auc', float('nan')):.3f} (floor {performance.get('floor', float('nan')):.3f})"
    )
    scores = retrained["scores"]
    if scores:
        out.print(
            f"on the same post-drift window: champion PR-AUC {scores['champion']['pr_auc']:.3f}, "
            f"challenger {scores['challenger']['pr_auc']:.3f}; promoted: {retrained['promoted']}; "
            f"steps skipped: {retrained['steps_skipped'] or 'none'}"
        )
    out.print(
        f"MLflow UI: .venv/bin/mlflow ui --backend-store-uri {settings.tracking_uri} "
        f"--default-artifact-root {settings.artifact_root}"
    )
