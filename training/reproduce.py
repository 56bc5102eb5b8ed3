"""``fsml reproduce RUN_ID``: rebuild a training run from its record and compare the results.

The recorded parameters (feature service, as-of time, windows, LightGBM settings) rebuild the
training set through Feast and retrain, with the engine that made the run (the tag
``fsml.engine``: local, or Ray with as many LightGBM workers, since they split the rows); the
result names that engine. The run is reproduced when the rebuilt training set has
the recorded fingerprint and the retrained model gives the same test-window predictions; code,
feature repo and model-byte differences are reported alongside.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from dataclasses import fields
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from fsml.training.dataset import Windows, build_training_set
from fsml.training.train import TrainConfig, fit

from fsml import registry
from fsml.distributed import engine_session
from fsml.errors import FsmlError
from fsml.featurestore import describe_service, open_store
from fsml.fingerprint import code_fingerprint, feature_repo_fingerprint, git_state
from fsml.settings import Settings

log = logging.getLogger(__name__)


def reproduce(settings: Settings, run_id: str) -> dict[str, Any]:
    client = registry.client(settings, create=False)
    params, tags = registry.run_record(client, run_id)
    if tags.get("fsml.kind") != "training":
        raise FsmlError(f"run {run_id} is not an fsml training run")
    windows = Windows.ending_at(
        datetime.fromisoformat(params["as_of"]),
        float(params["train_days"]),
        float(params["valid_days"]),
        float(params["test_days"]),
    )
    config = _config(params)
    recorded_predictions = _recorded_predictions(client, run_id)
    recorded_model = _recorded_booster_sha(client, run_id)
    engine = recorded_engine(settings, params, tags)
    store = open_store(settings)
    spec = describe_service(store, params["feature_service"])
    with engine_session(engine):
        warmup = float(params.get("feature_warmup_days", 0))
        training_set = build_training_set(store, spec, windows, warmup, engine)
        model_name = settings.model_name(spec.name)
        trained = fit(training_set.parts, spec, windows, config, model_name, training_set.fingerprint, engine)

    prediction_diff = _prediction_difference(recorded_predictions, trained.test_predictions, spec.label_source.id)
    rebuilt_model = hashlib.sha256(trained.bundle.booster_text.encode()).hexdigest()
    checks = {
        "data_fingerprint": _check(tags.get("fsml.data_fingerprint"), training_set.fingerprint),
        "test_predictions": {"match": prediction_diff == 0.0, "max_abs_diff": prediction_diff},
        "model_bytes": _check(recorded_model, rebuilt_model),
        "code_fingerprint": _check(tags.get("fsml.code_fingerprint"), code_fingerprint()),
        "feature_repo_fingerprint": _check(
            tags.get("fsml.feature_repo_fingerprint"),
            feature_repo_fingerprint(settings.feature_repo),
        ),
        "git_commit": _check(tags.get("fsml.git_commit"), git_state()["commit"]),
    }
    identical = checks["data_fingerprint"]["match"] and checks["test_predictions"]["match"]
    return {
        "run_id": run_id,
        "engine": engine.engine,
        **({"ray_train_workers": engine.ray_train_workers} if engine.engine == "ray" else {}),
        "identical": identical,
        "differences": [name for name, check in checks.items() if not check["match"]],
        "checks": checks,
    }


def recorded_engine(settings: Settings, params: dict[str, str], tags: dict[str, str]) -> Settings:
    """The settings to rebuild with: the engine that made the run (runs older than the engine
    tag were local), with as many LightGBM workers on Ray, since they split the rows."""
    engine = tags.get("fsml.engine", params.get("engine", "local"))
    update: dict[str, object] = {"engine": engine}
    if engine == "ray":
        update["ray_train_workers"] = int(params.get("ray_train_workers", settings.ray_train_workers))
    log.info("rebuilding run with the %s engine that made it", engine)
    return settings.model_copy(update=update)


def _config(params: dict[str, str]) -> TrainConfig:
    values = {}
    for f in fields(TrainConfig):
        if f.name not in params:
            raise FsmlError(f"the run does not record the training parameter {f.name!r}")
        values[f.name] = float(params[f.name]) if f.type == "float" else int(params[f.name])
    return TrainConfig(**values)


def _check(recorded: str | None, rebuilt: str) -> dict[str, Any]:
    return {"match": recorded == rebuilt, "recorded": recorded, "rebuilt": rebuilt}


def _recorded_predictions(client, run_id: str) -> pd.DataFrame:
    from mlflow.exceptions import MlflowException

    artifact = "evaluation/test_predictions.parquet"
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(run_id, artifact, tmp)
        except MlflowException:
            raise FsmlError(f"run {run_id} has no recorded {artifact} to compare with") from None
        return pd.read_parquet(path)


def _prediction_difference(recorded: pd.DataFrame, rebuilt: pd.DataFrame, id_column: str) -> float:
    """Largest absolute score difference over the same rows; infinite if the rows differ."""
    if len(recorded) != len(rebuilt) or not np.array_equal(
        recorded[id_column].to_numpy(), rebuilt[id_column].to_numpy()
    ):
        return float("inf")
    return float(np.max(np.abs(recorded["score"].to_numpy() - rebuilt["score"].to_numpy()), initial=0.0))


def _recorded_booster_sha(client, run_id: str) -> str | None:
    versions = client.search_model_versions(f"run_id = '{run_id}'")
    if not versions:
        return None
    return hashlib.sha256(registry.load_bundle(versions[0]).booster_text.encode()).hexdigest()
