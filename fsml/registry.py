"""MLflow as the model registry: runs with their full record, versions, aliases and loading.

Every MLflow write of a training happens in ``register_training`` after the model exists, and
is undone (version and run deleted) if any of it fails, so a failed command leaves nothing
half-written in the registry. Tag names follow Feast's MLflow integration (``feast.project``,
``feast.feature_service``) so that ``feast.mlflow.resolve_features`` works on our models.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fsml.cleanup import owner_gone, owner_tag
from fsml.errors import FsmlError
from fsml.model import CARD_FILE, ModelBundle, ModelCard
from fsml.settings import Settings

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion


log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
MLFLOW_BOOSTER_FILE = "model.lgb"  # what mlflow.lightgbm writes: Booster.save_model, text format


@dataclass(frozen=True)
class Registered:
    run_id: str
    model_name: str
    version: str


def client(settings: Settings, create: bool = True) -> MlflowClient:
    """A client on the configured store; with ``create=False`` a missing local store is an error."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import mlflow

    if settings.mlflow_tracking_uri is None:
        if not create and not (settings.mlflow_dir / "mlflow.db").is_file():
            raise FsmlError(f"no MLflow store under {settings.mlflow_dir}: train a model first")
        settings.mlflow_dir.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(settings.tracking_uri)
    return mlflow.MlflowClient(tracking_uri=settings.tracking_uri)


def experiment_id(settings: Settings, mlflow_client: MlflowClient) -> str:
    existing = mlflow_client.get_experiment_by_name(settings.experiment_name)
    if existing is not None:
        return existing.experiment_id
    return mlflow_client.create_experiment(
        settings.experiment_name,
        artifact_location=settings.artifact_root if settings.mlflow_tracking_uri is None else None,
        tags={"feast.project": settings.feast_project, "fsml.env": settings.env},
    )


def register_training(
    settings: Settings,
    bundle: ModelBundle,
    params: dict[str, Any],
    tags: dict[str, str],
    artifacts: dict[str, Path],
) -> Registered:
    """Log the run (params, metrics, tags, artifact folders, model); register it as challenger."""
    import mlflow

    mlflow_client = client(settings)
    card = bundle.card
    run = mlflow_client.create_run(experiment_id(settings, mlflow_client), tags={**tags, **owner_tags()})
    run_id = run.info.run_id
    version: ModelVersion | None = None
    try:
        with mlflow.start_run(run_id=run_id):
            mlflow.log_params(params)
            mlflow.log_metrics({k: v for k, v in card.metrics.items() if v == v})
            for name, folder in artifacts.items():
                mlflow.log_artifacts(str(folder), artifact_path=name)
            with tempfile.TemporaryDirectory() as tmp:
                card_path = Path(tmp) / CARD_FILE
                card_path.write_text(card.model_dump_json(indent=2))
                info = mlflow.lightgbm.log_model(
                    bundle.booster,
                    name="model",
                    extra_files=[str(card_path)],
                    pip_requirements=_requirements(),
                )
        _ensure_registered_model(mlflow_client, card.model_name)
        version = mlflow_client.create_model_version(
            card.model_name,
            source=info.model_uri,
            run_id=run_id,
            tags={**_version_tags(card), "feast.project": settings.feast_project},
            description=f"{card.feature_service} as of {card.training_window['as_of']}",
        )
        mlflow_client.set_registered_model_alias(card.model_name, CHALLENGER, version.version)
        return Registered(run_id=run_id, model_name=card.model_name, version=str(version.version))
    except BaseException as exc:  # SIGTERM too (fsml.signals): the run ends FAILED, never RUNNING
        end_failed(mlflow_client, run_id, f"{type(exc).__name__}: {exc}")
        _undo(mlflow_client, run_id, card.model_name, version)
        if not isinstance(exc, Exception):
            raise
        raise FsmlError(f"registering the model failed, nothing was kept: {exc}") from exc


OWNER_TAG = "fsml.owner"
FAILURE_TAG = "fsml.failure"


def owner_tags() -> dict[str, str]:
    """Which process runs a run: a later run can tell that a RUNNING one was killed."""
    return {OWNER_TAG: owner_tag()}


def end_failed(mlflow_client: MlflowClient, run_id: str, why: str) -> None:
    try:
        mlflow_client.set_tag(run_id, FAILURE_TAG, why[:500])
        mlflow_client.set_terminated(run_id, "FAILED")
    except Exception:  # the store itself may be what failed; the next start marks the run
        log.exception("could not mark run %s FAILED", run_id)


def fail_stale_runs(settings: Settings) -> list[str]:
    """Mark FAILED the RUNNING runs of this environment's experiment whose process has ended
    (killed before it could end them); returns their ids."""
    from mlflow.entities import ViewType

    try:
        mlflow_client = client(settings, create=False)
    except FsmlError:  # no store yet: nothing can be stale
        return []
    experiment = mlflow_client.get_experiment_by_name(settings.experiment_name)
    if experiment is None:
        return []
    runs = mlflow_client.search_runs(
        [experiment.experiment_id], filter_string="attributes.status = 'RUNNING'", run_view_type=ViewType.ALL
    )
    stale = [r for r in runs if owner_gone(r.data.tags.get(OWNER_TAG, ""), r.info.start_time / 1000)]
    for run in stale:
        owner = run.data.tags.get(OWNER_TAG, "an unknown process")
        end_failed(mlflow_client, run.info.run_id, f"killed: {owner} ended without finishing this run")
        log.warning("marked run %s FAILED: its process %s is gone", run.info.run_id, owner)
    return [r.info.run_id for r in stale]


def _ensure_registered_model(mlflow_client: MlflowClient, name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        mlflow_client.get_registered_model(name)
    except MlflowException:
        mlflow_client.create_registered_model(
            name, description="Registered by fsml; aliases: champion (served), challenger."
        )


def _undo(mlflow_client: MlflowClient, run_id: str, name: str, version: ModelVersion | None) -> None:
    try:
        if version is not None:
            mlflow_client.delete_model_version(name, version.version)
        mlflow_client.delete_run(run_id)
    except Exception:  # the original error matters more; log what could not be cleaned
        log.exception("could not remove run %s after a failed registration", run_id)


def _version_tags(card: ModelCard) -> dict[str, str]:
    return {
        "feast.feature_service": card.feature_service,
        "fsml.data_fingerprint": card.data_fingerprint,
        "fsml.test_pr_auc": f"{card.metrics.get('test_pr_auc', float('nan')):.6f}",
    }


def _requirements() -> list[str]:
    """Pinned requirements of the logged model; given explicitly so MLflow does not infer them
    by loading the model in a subprocess (seconds per run)."""
    from importlib.metadata import version

    return [f"{pkg}=={version(pkg)}" for pkg in ("lightgbm", "numpy", "pandas", "scikit-learn")]


def version_by_alias(mlflow_client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    from mlflow.exceptions import MlflowException

    try:
        return mlflow_client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def champion_version(settings: Settings) -> ModelVersion | None:
    """The version the champion alias of the settings' feature service points at, if any."""
    return version_by_alias(client(settings, create=False), settings.model_name(settings.feature_service), CHAMPION)


def load_champion(settings: Settings, missing: str) -> ModelBundle:
    """The champion's booster and card; without a champion, an error ending with ``missing``."""
    version = champion_version(settings)
    if version is None:
        raise FsmlError(f"model {settings.model_name(settings.feature_service)!r} has no champion{missing}")
    return load_bundle(version)


def get_version(mlflow_client: MlflowClient, name: str, version: str) -> ModelVersion:
    from mlflow.exceptions import MlflowException

    try:
        return mlflow_client.get_model_version(name, version)
    except MlflowException:
        raise FsmlError(f"model {name!r} has no version {version}") from None


def load_bundle(version: ModelVersion) -> ModelBundle:
    """Download a version's booster and card; call after ``client(settings)`` set the store."""
    import mlflow

    local = Path(mlflow.artifacts.download_artifacts(version.source))
    card_path = local / "extra_files" / CARD_FILE
    if not card_path.is_file():
        raise FsmlError(f"model {version.name} v{version.version} has no {CARD_FILE}: not an fsml model")
    return ModelBundle(
        booster_text=(local / MLFLOW_BOOSTER_FILE).read_text(),
        card=ModelCard.model_validate_json(card_path.read_text()),
        version=str(version.version),
    )


def run_record(mlflow_client: MlflowClient, run_id: str) -> tuple[dict[str, str], dict[str, str]]:
    """(params, tags) of a run; unknown run ids are a one-line error."""
    from mlflow.exceptions import MlflowException

    try:
        run = mlflow_client.get_run(run_id)
    except MlflowException:
        raise FsmlError(f"unknown MLflow run {run_id!r}") from None
    if run.info.lifecycle_stage == "deleted":
        raise FsmlError(f"MLflow run {run_id!r} was deleted")
    return dict(run.data.params), dict(run.data.tags)


def download_json(mlflow_client: MlflowClient, run_id: str, path: str) -> Any:
    local = mlflow_client.download_artifacts(run_id, path)
    return json.loads(Path(local).read_text())
