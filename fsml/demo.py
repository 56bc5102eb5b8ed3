"""The platform's main job end to end, on the default synthetic data set.

Each step calls the same function as its CLI command, is timed, and says where its result is.
Without ``REDIS_URL`` the demo runs a private ``redis-server`` with its files under
``FSML_HOME/redis``; the scoring service runs as a real process and is called over HTTP.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pandas as pd
from pydantic import SecretStr
from rich.table import Table

from fsml.console import out, steps
from fsml.redis_server import RedisServer
from fsml.settings import Settings
from fsml.timing import timed

log = logging.getLogger(__name__)


@dataclass
class Step:
    name: str
    run: Callable[[], Any]
    where: Callable[[Any], str]


@contextlib.contextmanager
def online_store(settings: Settings) -> Iterator[Settings]:
    """The given Redis, or a private one for the length of the demo."""
    if "redis_url" in settings.model_fields_set:
        yield settings
        return
    with RedisServer(settings.home / "redis", persist=True) as server:
        log.info(
            "started a private redis-server on port %d (files in %s)", server.port, server.directory
        )
        yield settings.model_copy(update={"redis_url": server.url})


def run_demo(settings: Settings) -> dict[str, Any]:
    if settings.api_key is None:  # the demo's own service gets a throw-away admin key
        settings = settings.model_copy(update={"api_key": SecretStr(secrets.token_urlsafe(16))})
    with online_store(settings) as settings:
        settings.export()
        return _run(settings)


def _run(settings: Settings) -> dict[str, Any]:
    from fsml.featurestore import apply_repo
    from serving.batch import score_file
    from serving.materialize import materialize
    from serving.process import ServerProcess
    from training.features import build_features
    from training.pipeline import train
    from training.promote import promote
    from training.synthetic import GeneratorConfig, generate, save

    config = GeneratorConfig()
    batch_dir = settings.data_dir / "batch"
    server = ServerProcess(settings)
    results: dict[str, Any] = {}
    plan = [
        Step(
            "generate data",
            lambda: save(generate(config), config, settings.raw_dir),
            lambda m: (
                f"{settings.raw_dir} ({m['rows']['transactions']:,} transactions, "
                f"fraud rate {m['fraud_rate']:.2%})"
            ),
        ),
        Step(
            "build features",
            lambda: build_features(settings.raw_dir, settings.features_dir),
            lambda r: (
                f"{settings.features_dir} ({sum(r.tables.values()):,} rows, {len(r.tables)} tables)"
            ),
        ),
        Step(
            "register features",
            lambda: apply_repo(settings),
            lambda _: f"{settings.home / 'feast'} (Feast project {settings.feast_project})",
        ),
        Step(
            "train",
            lambda: train(settings),
            lambda o: (
                f"MLflow run {o.registered.run_id}, {o.registered.model_name} "
                f"v{o.registered.version}; report {o.report}"
            ),
        ),
        Step(
            "promote",
            lambda: promote(settings),
            lambda d: f"champion v{d.champion_version} ({d.reason})",
        ),
        Step(
            "materialize",
            lambda: materialize(settings),
            lambda r: f"{settings.redis_url} ({r.chunks} chunks of {len(r.views)} views)",
        ),
        Step("start service", server.start, lambda s: f"{s.url} (log {s.log_path})"),
        Step(
            "predict over HTTP",
            lambda: _predict(settings, server.url),
            lambda rows: f"{len(rows)} answers from {server.url}/v1/predict (below)",
        ),
        Step(
            "batch score a day",
            lambda: score_file(
                settings, _last_day(settings, batch_dir), batch_dir / "scored.parquet"
            ),
            lambda r: (
                f"{r['output']} ({r['rows_scored']:,} rows scored, {r['rows_rejected']} rejected, "
                f"model v{r['model_version']})"
            ),
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


def _predict(settings: Settings, url: str) -> list[dict[str, Any]]:
    """New transactions as an application would send them, just after the data ends."""
    import httpx

    tx = pd.read_parquet(settings.raw_dir / "transactions.parquet")
    merchants = pd.read_parquet(settings.raw_dir / "merchants.parquet")
    end = tx["timestamp"].max().ceil("D")
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


def _last_day(settings: Settings, batch_dir) -> Any:  # noqa: ANN001
    """The data's last day of transactions as a batch-scoring input file."""
    tx = pd.read_parquet(settings.raw_dir / "transactions.parquet")
    last = tx[tx["timestamp"] >= tx["timestamp"].max().floor("D")]
    batch_dir.mkdir(parents=True, exist_ok=True)
    path = batch_dir / "last_day.parquet"
    last[["transaction_id", "customer_id", "merchant_id", "amount", "timestamp"]].to_parquet(
        path, index=False
    )
    return path


def _print_summary(
    settings: Settings, plan: list[Step], results: dict[str, Any], timings: dict[str, float]
) -> None:
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
    metrics = results["train"].trained.bundle.card.metrics
    out.print(
        f"champion test PR-AUC {metrics['test_pr_auc']:.3f} against a base fraud rate of "
        f"{metrics['test_positive_rate']:.2%} (ROC-AUC {metrics['test_roc_auc']:.3f}, "
        f"recall at 1% FPR {metrics['test_recall_at_1pct_fpr']:.2f})"
    )
    out.print(
        f"MLflow UI: .venv/bin/mlflow ui --backend-store-uri {settings.tracking_uri} "
        f"--default-artifact-root {settings.artifact_root}"
    )
