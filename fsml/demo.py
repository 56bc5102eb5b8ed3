"""The platform's main job end to end, on the default synthetic data set.

Each step calls the same function as its CLI command, is timed, and says where its result is.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rich.table import Table

from fsml.console import out, steps
from fsml.settings import Settings
from fsml.timing import timed

log = logging.getLogger(__name__)


@dataclass
class Step:
    name: str
    run: Callable[[], Any]
    where: Callable[[Any], str]


def run_demo(settings: Settings) -> dict[str, Any]:
    from fsml.featurestore import apply_repo
    from training.features import build_features
    from training.pipeline import train
    from training.promote import promote
    from training.synthetic import GeneratorConfig, generate, save

    config = GeneratorConfig()
    results: dict[str, Any] = {}
    plan = [
        Step(
            "generate data",
            lambda: save(generate(config), config, settings.raw_dir),
            lambda meta: (
                f"{settings.raw_dir} ({meta['rows']['transactions']:,} transactions, "
                f"fraud rate {meta['fraud_rate']:.2%})"
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
    ]
    timings: dict[str, float] = {}
    with steps("demo", len(plan)) as start:
        for step in plan:
            start(step.name)
            with timed(timings, step.name):
                results[step.name] = step.run()
    _print_summary(settings, plan, results, timings)
    return results


def _print_summary(
    settings: Settings, plan: list[Step], results: dict[str, Any], timings: dict[str, float]
) -> None:
    table = Table(title="fsml demo", show_lines=False)
    table.add_column("step")
    table.add_column("seconds", justify="right")
    table.add_column("result")
    for step in plan:
        table.add_row(step.name, f"{timings[step.name]:.1f}", step.where(results[step.name]))
    out.print(table)
    trained = results["train"]
    metrics = trained.trained.bundle.card.metrics
    out.print(
        f"champion test PR-AUC {metrics['test_pr_auc']:.3f} against a base fraud rate of "
        f"{metrics['test_positive_rate']:.2%} (ROC-AUC {metrics['test_roc_auc']:.3f}, "
        f"recall at 1% FPR {metrics['test_recall_at_1pct_fpr']:.2f})"
    )
    out.print(
        f"MLflow UI: .venv/bin/mlflow ui --backend-store-uri {settings.tracking_uri} "
        f"--default-artifact-root {settings.artifact_root}"
    )
