"""``fsml train``: training set, model, evaluation report and registration, in that order.

Nothing is written to MLflow or ``FSML_HOME`` until the model has been trained and evaluated;
a bad input stops the pipeline before any write.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fsml.training.dataset import TrainingSet, build_training_set, first_timestamp
from fsml.training.report import training_report
from fsml.training.train import TrainConfig, TrainedModel, fit
from fsml.training.windows import WindowDays, Windows, fit_windows

from fsml import atomic
from fsml.distributed import engine_session
from fsml.featurestore import ServiceSpec, describe_service, open_store
from fsml.fingerprint import code_fingerprint, feature_repo_fingerprint, git_state
from fsml.registry import Registered, fail_stale_runs, register_training
from fsml.settings import Settings
from fsml.timing import timed

log = logging.getLogger(__name__)


@dataclass
class TrainOutcome:
    registered: Registered
    trained: TrainedModel
    training_set: TrainingSet
    report: Path
    timings: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        card = self.trained.bundle.card
        return {
            "run_id": self.registered.run_id,
            "model_name": self.registered.model_name,
            "model_version": self.registered.version,
            "feature_service": card.feature_service,
            "data_fingerprint": self.training_set.fingerprint,
            "metrics": card.metrics,
            "threshold": card.threshold,
            "training_window": card.training_window,
            "report": str(self.report),
            "timings_s": self.timings,
        }


def default_as_of() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def window_days(settings: Settings) -> WindowDays:
    return WindowDays(settings.feature_warmup_days, settings.train_days, settings.valid_days, settings.test_days)


def prepare(
    settings: Settings, feature_service: str, as_of: datetime
) -> tuple[ServiceSpec, Windows, WindowDays, TrainingSet]:
    """The service, its windows (shrunk to the labelled history if it is short) and training set."""
    store = open_store(settings)
    spec = describe_service(store, feature_service)
    days = fit_windows(window_days(settings), first_timestamp(spec), as_of)
    windows = Windows.ending_at(as_of, days.train, days.valid, days.test)
    return spec, windows, days, build_training_set(store, spec, windows, days.warmup, settings)


def train(
    settings: Settings,
    feature_service: str | None = None,
    as_of: datetime | None = None,
    reason: str = "manual",
) -> TrainOutcome:
    timings: dict[str, float] = {}
    name = feature_service or settings.feature_service
    as_of = as_of or default_as_of()
    fail_stale_runs(settings)  # a killed training must not stay RUNNING in MLflow
    config = TrainConfig.from_settings(settings)
    with engine_session(settings):
        with timed(timings, "training_set"):
            spec, windows, days, training_set = prepare(settings, name, as_of)
        with timed(timings, "fit"):
            model_name = settings.model_name(name)
            trained = fit(training_set.parts, spec, windows, config, model_name, training_set.fingerprint, settings)
    with timed(timings, "register"), tempfile.TemporaryDirectory() as tmp:
        artifacts = _write_artifacts(Path(tmp), trained, training_set)
        registered = register_training(
            settings,
            trained.bundle,
            params=_params(config, spec, windows, days) | engine_params(settings),
            tags=_tags(settings, spec, windows, training_set, reason),
            artifacts=artifacts,
        )
        report = settings.reports_dir / f"training-{registered.model_name}-v{registered.version}.html"
        atomic.write_text(report, (artifacts["report"] / "training_report.html").read_text())
    log.info("registered %s version %s", registered.model_name, registered.version)
    return TrainOutcome(registered, trained, training_set, report, timings)


def _write_artifacts(tmp: Path, trained: TrainedModel, training_set: TrainingSet) -> dict[str, Path]:
    """Files logged with the run, one folder per artifact path."""
    card = trained.bundle.card
    folders = {name: tmp / name for name in ("report", "evaluation", "data")}
    for folder in folders.values():
        folder.mkdir()
    title = f"{card.model_name}: training evaluation"
    (folders["report"] / "training_report.html").write_text(training_report(trained, title))
    trained.test_predictions.to_parquet(folders["evaluation"] / "test_predictions.parquet", index=False)
    (folders["evaluation"] / "calibration.json").write_text(json.dumps(trained.calibration, indent=2))
    (folders["evaluation"] / "importance.json").write_text(json.dumps(trained.importance, indent=2))
    (folders["data"] / "null_rates.json").write_text(json.dumps(training_set.null_rates, indent=2))
    counts = {k: {"rows": len(v), "positives": int(v["label"].sum())} for k, v in training_set.parts.items()}
    (folders["data"] / "splits.json").write_text(json.dumps(counts, indent=2))
    return {name: folder for name, folder in folders.items()}


def _params(config: TrainConfig, spec: ServiceSpec, windows: Windows, days: WindowDays) -> dict[str, Any]:
    """The windows as used (after any shrink), so that ``fsml reproduce`` rebuilds the same set."""
    return {
        **config.as_params(),
        "feature_service": spec.name,
        "label_source": spec.label_source.name,
        "as_of": windows.as_of.isoformat(),
        "train_days": days.train,
        "valid_days": days.valid,
        "test_days": days.test,
        "feature_warmup_days": days.warmup,
    }


def engine_params(settings: Settings) -> dict[str, Any]:
    """What else decides the model's bytes: the engine and, on Ray, how many workers split the rows."""
    if settings.engine == "ray":
        return {"engine": "ray", "ray_train_workers": settings.ray_train_workers}
    return {"engine": settings.engine}


def _tags(
    settings: Settings, spec: ServiceSpec, windows: Windows, training_set: TrainingSet, reason: str
) -> dict[str, str]:
    git = git_state()
    return {
        "mlflow.runName": f"train-{spec.name}-{windows.as_of:%Y%m%dT%H%M%S}",
        "fsml.kind": "training",
        "fsml.reason": reason,
        "fsml.env": settings.env,
        "fsml.engine": settings.engine,
        "feast.project": settings.feast_project,
        "feast.feature_service": spec.name,
        "fsml.data_fingerprint": training_set.fingerprint,
        "fsml.feature_repo_fingerprint": feature_repo_fingerprint(settings.feature_repo),
        "fsml.code_fingerprint": code_fingerprint(),
        "fsml.git_commit": git["commit"],
        "fsml.git_dirty": git["dirty"],
        "mlflow.source.git.commit": git["commit"],
        **{f"fsml.window.{k}": v for k, v in windows.describe().items()},
    }
