"""MLflow as the model registry: runs with their full record, versions, aliases and loading.

Every MLflow write of a training happens in ``register_training`` after the model exists, and
is undone (version and run deleted) if any of it fails, so a failed command leaves nothing
half-written in the registry. Every move of the champion alias is appended to a tag of the
registered model (``fsml.champion_history``), so ``rollback`` can restore the champion before
the current one in one step, from any machine that reaches the registry. Tag names follow
Feast's MLflow integration (``feast.project``, ``feast.feature_service``) so that
``feast.mlflow.resolve_features`` works on our models.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fsml.cleanup import owner_gone, owner_tag
from fsml.errors import FsmlError
from fsml.model import BOOSTER_FILE, CARD_FILE, ModelBundle, ModelCard
from fsml.settings import Settings

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion


log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
HISTORY_TAG = "fsml.champion_history"
HISTORY_KEEP = 50  # moves kept (a registry tag holds up to 100,000 characters)
ROLLBACK = "rollback"
CANARY_ROLLED_BACK = "fsml.canary.rolled_back"  # version tag: why its canary was stopped
LEGACY_BOOSTER_FILE = "model.lgb"  # models logged with the lightgbm flavour before the pyfunc one


@dataclass(frozen=True)
class Registered:
    run_id: str
    model_name: str
    version: str


def client(settings: Settings, create: bool = True) -> MlflowClient:
    """A client on the configured store; with ``create=False`` a missing local store is an error."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # A model's environment is its pinned requirements and the fsml code shipped with it, not
    # whichever uv project the command happens to run in (MLflow would copy its 1 MB lock file).
    os.environ.setdefault("MLFLOW_LOG_UV_FILES", "false")
    import mlflow

    if settings.mlflow_tracking_uri is None:
        if not create and not (settings.mlflow_dir / "mlflow.db").is_file():
            raise FsmlError(f"no MLflow store under {settings.mlflow_dir}: train a model first")
        settings.mlflow_dir.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(settings.tracking_uri)
    return mlflow.MlflowClient(tracking_uri=settings.tracking_uri)


EXPERIMENT_KIND = "mlflow.experimentKind"  # MLflow 3's UI opens an experiment in the layout this tag names
CLASSIC_ML = "custom_model_development"


def experiment_id(settings: Settings, mlflow_client: MlflowClient) -> str:
    existing = mlflow_client.get_experiment_by_name(settings.experiment_name)
    if existing is not None:
        if existing.tags.get(EXPERIMENT_KIND) != CLASSIC_ML:
            mlflow_client.set_experiment_tag(existing.experiment_id, EXPERIMENT_KIND, CLASSIC_ML)
        return existing.experiment_id
    return mlflow_client.create_experiment(
        settings.experiment_name,
        artifact_location=settings.artifact_root if settings.mlflow_tracking_uri is None else None,
        tags={"feast.project": settings.feast_project, "fsml.env": settings.env, EXPERIMENT_KIND: CLASSIC_ML},
    )


@dataclass(frozen=True)
class TrainingRecord:
    """What a training run logs besides the model: its parameters, tags and artifact folders,
    the data sets it learnt from, when it started, and artifacts that need the version number."""

    params: dict[str, Any]
    tags: dict[str, str]
    artifacts: dict[str, Path]
    datasets: dict[str, Any] = field(default_factory=dict)  # context -> mlflow.data Dataset
    started_ms: int | None = None
    input_example: Any = None
    late_artifacts: Callable[[Registered], dict[str, Path]] | None = None


def register_training(settings: Settings, bundle: ModelBundle, record: TrainingRecord) -> Registered:
    """Log the run (params, metrics, data sets, artifacts, pyfunc model); register a challenger."""
    import mlflow

    mlflow_client = client(settings)
    card = bundle.card
    run = mlflow_client.create_run(
        experiment_id(settings, mlflow_client), start_time=record.started_ms, tags={**record.tags, **owner_tags()}
    )
    run_id = run.info.run_id
    version: ModelVersion | None = None
    try:
        with mlflow.start_run(run_id=run_id):
            mlflow.log_params(record.params)
            mlflow.log_metrics({k: v for k, v in card.metrics.items() if v == v})
            for context, dataset in record.datasets.items():
                mlflow.log_input(dataset, context=context, tags={"fsml.data_fingerprint": card.data_fingerprint})
            for name, folder in record.artifacts.items():
                mlflow.log_artifacts(str(folder), artifact_path=name)
            info = _log_pyfunc(bundle, record.input_example, _version_tags(card))
            _ensure_registered_model(mlflow_client, card.model_name)
            version = mlflow_client.create_model_version(
                card.model_name,
                source=info.model_uri,
                run_id=run_id,
                tags={**_version_tags(card), "feast.project": settings.feast_project},
                description=f"{card.feature_service} as of {card.training_window['as_of']}",
                model_id=info.model_id,
            )
            registered = Registered(run_id=run_id, model_name=card.model_name, version=str(version.version))
            for name, folder in (record.late_artifacts(registered) if record.late_artifacts else {}).items():
                mlflow.log_artifacts(str(folder), artifact_path=name)
        mlflow_client.set_registered_model_alias(card.model_name, CHALLENGER, version.version)
        return registered
    except BaseException as exc:  # SIGTERM too (fsml.signals): the run ends FAILED, never RUNNING
        end_failed(mlflow_client, run_id, f"{type(exc).__name__}: {exc}")
        _undo(mlflow_client, run_id, card.model_name, version)
        if not isinstance(exc, Exception):
            raise
        raise FsmlError(f"registering the model failed, nothing was kept: {exc}") from exc


def _log_pyfunc(bundle: ModelBundle, input_example: Any, tags: dict[str, str]) -> Any:
    """The model as a pyfunc logged from code (no pickle) with the booster and card as artifacts,
    a signature of the feature columns, and an input example."""
    import mlflow

    from fsml import pyfunc

    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        # The signature is given: MLflow's hint about integer columns in the example does not apply.
        warnings.filterwarnings("ignore", "Hint: Inferred schema contains integer column")
        return mlflow.pyfunc.log_model(
            name="model",
            python_model=str(pyfunc.MODEL_CODE),
            artifacts=pyfunc.artifacts(Path(tmp) / "files", bundle),
            code_paths=[pyfunc.code_package(Path(tmp) / "code")],
            signature=signature(bundle),
            input_example=input_example,
            pip_requirements=_requirements(),
            tags=tags,
        )


def signature(bundle: ModelBundle) -> Any:
    """Inputs: the feature columns, all optional (a feature may be missing). Integer features
    may come as int64, or as float64 when a value is missing, and MLflow accepts neither for
    the other's type, so they are typed ``Any``; the encoder converts them. Outputs: score,
    decision and whether every stored feature was missing; one parameter, the decision then."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, DataType, ParamSchema, ParamSpec, Schema
    from mlflow.types.schema import AnyType

    from fsml.model import REVIEW
    from fsml.pyfunc import POLICY_PARAM

    kinds = {"float": DataType.double, "string": DataType.string}
    inputs = [ColSpec(kinds.get(f.dtype) or AnyType(), f.column, required=False) for f in bundle.card.features]
    outputs = [
        ColSpec(DataType.double, "score"),
        ColSpec(DataType.string, "decision"),
        ColSpec(DataType.boolean, "all_missing"),
    ]
    params = ParamSchema([ParamSpec(POLICY_PARAM, DataType.string, REVIEW)])
    return ModelSignature(inputs=Schema(inputs), outputs=Schema(outputs), params=params)


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

    return [f"{pkg}=={version(pkg)}" for pkg in ("mlflow", "lightgbm", "numpy", "pandas", "pydantic")]


def version_by_alias(mlflow_client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    from mlflow.exceptions import MlflowException

    try:
        return mlflow_client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def champion_history(mlflow_client: MlflowClient, name: str) -> list[dict[str, Any]]:
    """Moves of the champion alias, oldest first: version, previous, at, reason."""
    from mlflow.exceptions import MlflowException

    try:
        raw = mlflow_client.get_registered_model(name).tags.get(HISTORY_TAG)
    except MlflowException:
        return []
    try:
        return json.loads(raw) if raw else []
    except ValueError:
        log.warning("ignoring an unreadable %s tag on %s", HISTORY_TAG, name)
        return []


def set_champion(mlflow_client: MlflowClient, name: str, version: str, reason: str) -> str | None:
    """Point the champion alias at ``version`` and record the move; returns the previous one."""
    previous = version_by_alias(mlflow_client, name, CHAMPION)
    before = str(previous.version) if previous else None
    mlflow_client.set_registered_model_alias(name, CHAMPION, str(version))
    move = {"version": str(version), "previous": before, "at": datetime.now(UTC).isoformat(), "reason": reason}
    history = [*champion_history(mlflow_client, name), move][-HISTORY_KEEP:]
    mlflow_client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history))
    return before


def rollback(settings: Settings, feature_service: str | None = None, reason: str = "manual") -> dict[str, Any]:
    """Restore the champion that preceded the current one (the one its promotion replaced).

    Rollbacks are moves too, but never a target: rolling back twice goes two promotions back, it
    does not undo the first rollback."""
    mlflow_client = client(settings, create=False)
    name = settings.model_name(feature_service or settings.feature_service)
    current = version_by_alias(mlflow_client, name, CHAMPION)
    if current is None:
        raise FsmlError(f"model {name!r} has no champion to roll back")
    promoted = [
        m
        for m in champion_history(mlflow_client, name)
        if m["version"] == str(current.version) and not m["reason"].startswith(ROLLBACK)
    ]
    target = promoted[-1]["previous"] if promoted else None
    if target is None:
        raise FsmlError(f"model {name!r} v{current.version} has no previous champion in its alias history")
    get_version(mlflow_client, name, target)  # still there (not deleted)
    set_champion(mlflow_client, name, target, f"{ROLLBACK}: {reason}")
    mlflow_client.set_model_version_tag(name, str(current.version), "fsml.rolled_back", reason)
    log.info("rolled %s back from v%s to v%s: %s", name, current.version, target, reason)
    return {"model": name, "from_version": str(current.version), "to_version": target, "reason": reason}


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
    """Download a version's booster text and card (never the pyfunc wrapper: serving's hot path
    uses the booster directly); call after ``client(settings)`` set the store."""
    import mlflow

    local = Path(mlflow.artifacts.download_artifacts(version.source))
    # The pyfunc layout (artifacts/), and the LightGBM-flavour layout of models logged before it.
    for booster, card in (
        (local / "artifacts" / BOOSTER_FILE, local / "artifacts" / CARD_FILE),
        (local / LEGACY_BOOSTER_FILE, local / "extra_files" / CARD_FILE),
    ):
        if card.is_file() and booster.is_file():
            return ModelBundle(
                booster_text=booster.read_text(),
                card=ModelCard.model_validate_json(card.read_text()),
                version=str(version.version),
            )
    raise FsmlError(f"model {version.name} v{version.version} has no {CARD_FILE}: not an fsml model")


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
