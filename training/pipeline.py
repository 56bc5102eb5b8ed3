"""``fsml train``: training set, model, evaluation report and registration, in that order.

Nothing is written to MLflow or ``FSML_HOME`` until the model has been trained and evaluated;
a bad input stops the pipeline before any write.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fsml.training.compare import champion_comparison
from fsml.training.dataset import TrainingSet, build_training_set, first_timestamp
from fsml.training.report import training_report
from fsml.training.train import TrainConfig, TrainedModel, fit
from fsml.training.windows import WindowDays, Windows, fit_windows

from fsml import atomic
from fsml.distributed import engine_session
from fsml.featurestore import ServiceSpec, describe_service, open_store
from fsml.fingerprint import code_fingerprint, feature_repo_fingerprint, git_state
from fsml.registry import Registered, TrainingRecord, fail_stale_runs, register_training
from fsml.settings import Settings
from fsml.timing import timed

Progress = Callable[[str, int, int], None]  # (what, done, total), as fsml.console.chunk_progress takes
EXAMPLE_ROWS = 5

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
    progress: Progress | None = None,
) -> TrainOutcome:
    timings: dict[str, float] = {}
    started_ms = int(time.time() * 1000)
    progress = progress or (lambda *_: None)
    name = feature_service or settings.feature_service
    as_of = as_of or default_as_of()
    fail_stale_runs(settings)  # a killed training must not stay RUNNING in MLflow
    config = TrainConfig.from_settings(settings)
    progress("training set", 0, config.num_boost_round)
    with engine_session(settings):
        with timed(timings, "training_set"):
            spec, windows, days, training_set = prepare(settings, name, as_of)
        with timed(timings, "fit"):
            trained = fit(
                training_set.parts,
                spec,
                windows,
                config,
                settings.model_name(name),
                training_set.fingerprint,
                settings,
                on_iteration=lambda done, total: progress("boosting", done, total),
            )
    progress("report and registry", config.num_boost_round, config.num_boost_round)
    with timed(timings, "register"), tempfile.TemporaryDirectory() as tmp:
        comparison = champion_comparison(settings, trained, training_set)
        registered = register_training(
            settings,
            trained.bundle,
            TrainingRecord(
                params=_params(config, spec, windows, days) | engine_params(settings),
                tags=_tags(settings, spec, windows, training_set, reason),
                artifacts=_write_artifacts(Path(tmp), trained, training_set),
                datasets=_datasets(spec, training_set),
                started_ms=started_ms,
                input_example=_input_example(trained, training_set),
                late_artifacts=lambda r: _write_report(Path(tmp) / "report", trained, r, comparison),
            ),
        )
        report = settings.reports_dir / f"training-{registered.model_name}-v{registered.version}.html"
        atomic.write_text(report, (Path(tmp) / "report" / "training_report.html").read_text())
    log.info("registered %s version %s", registered.model_name, registered.version)
    return TrainOutcome(registered, trained, training_set, report, timings)


def _write_artifacts(tmp: Path, trained: TrainedModel, training_set: TrainingSet) -> dict[str, Path]:
    """Files logged with the run, one folder per artifact path."""
    folders = {name: tmp / name for name in ("evaluation", "data")}
    for folder in folders.values():
        folder.mkdir()
    trained.test_predictions.to_parquet(folders["evaluation"] / "test_predictions.parquet", index=False)
    (folders["evaluation"] / "calibration.json").write_text(json.dumps(trained.calibration, indent=2))
    (folders["evaluation"] / "importance.json").write_text(json.dumps(trained.importance, indent=2))
    (folders["data"] / "null_rates.json").write_text(json.dumps(training_set.null_rates, indent=2))
    counts = {k: {"rows": len(v), "positives": int(v["label"].sum())} for k, v in training_set.parts.items()}
    (folders["data"] / "splits.json").write_text(json.dumps(counts, indent=2))
    return folders


def _write_report(folder: Path, trained: TrainedModel, registered: Registered, comparison: dict) -> dict[str, Path]:
    """The evaluation report, titled with the registered name and version."""
    folder.mkdir()
    title = f"{registered.model_name} v{registered.version}: training evaluation"
    (folder / "training_report.html").write_text(training_report(trained, title, comparison))
    return {"report": folder}


def _datasets(spec: ServiceSpec, training_set: TrainingSet) -> dict[str, Any]:
    """The splits as MLflow data sets (schema, row count and digest; the rows stay in Feast)."""
    import mlflow.data

    contexts = {"train": "training", "valid": "validation", "test": "testing"}
    with warnings.catch_warnings():  # a local path reads two equal ways; integer columns are expected
        warnings.filterwarnings("ignore", "The specified dataset source can be interpreted in multiple ways")
        warnings.filterwarnings("ignore", "Hint: Inferred schema contains integer column")
        return {
            contexts[split]: mlflow.data.from_pandas(
                part, source=str(spec.label_source.path), name=f"{spec.name}-{split}", targets="label"
            )
            for split, part in training_set.parts.items()
        }


def _input_example(trained: TrainedModel, training_set: TrainingSet) -> Any:
    """A few complete test rows, feature columns only: what the pyfunc model's predict takes."""
    columns = trained.bundle.card.columns
    test = training_set.parts["test"][columns]
    complete = test.dropna()
    return (complete if len(complete) >= EXAMPLE_ROWS else test).head(EXAMPLE_ROWS).reset_index(drop=True)


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
