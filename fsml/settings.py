"""One settings class per process, read from ``FSML_*`` environment variables and ``.env``.

Paths are resolved once here so every stage (CLI, server, monitor) agrees on where state lives.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from redis.connection import parse_url

Environment = Literal["dev", "staging", "prod"]
MissingDecision = Literal["review", "flag", "pass"]

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_FEATURE_REPO = PROJECT_ROOT / "feature_repo"


class Settings(BaseSettings):
    """Platform configuration; every field is ``FSML_<NAME>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="FSML_", env_file=".env", extra="ignore", validate_default=True)

    home: Path = Field(Path(".fsml"), description="State directory: data, registry, MLflow, logs.")
    env: Environment = Field("dev", description="Keeps Feast projects, experiments and keys apart.")
    redis_url: str = Field(
        "redis://localhost:6379/0",
        validation_alias=AliasChoices("REDIS_URL", "FSML_REDIS_URL"),
        description="Online store.",
    )
    feature_repo: Path = Field(DEFAULT_FEATURE_REPO, description="Feast repository to use.")
    feature_service: str = Field("fraud_model_v1", description="Default feature service.")
    serve_feature_services: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Feature services one `fsml serve` hosts, comma-separated; default: feature_service.",
    )
    mlflow_tracking_uri: str | None = Field(
        None, description="MLflow tracking URI; default: a SQLite store under FSML_HOME."
    )
    redis_type: Literal["redis", "redis_cluster"] = Field(
        "redis", description="Feast's redis_type: REDIS_URL names the server, or any node of a Redis Cluster."
    )

    # Where batch work runs (feature build, training sets, training, batch scoring).
    engine: Literal["local", "ray"] = Field("local", description="local: this process; ray: Ray tasks.")
    ray_address: str | None = Field(
        None,
        validation_alias=AliasChoices("RAY_ADDRESS", "FSML_RAY_ADDRESS"),
        description="A running Ray cluster (ray://host:10001 or host:6379); default: a local Ray.",
    )
    ray_cpus: int | None = Field(None, gt=0, description="CPUs of a local Ray; default: all of them.")
    ray_task_retries: int = Field(3, ge=0, description="Retries of a Ray task whose worker died.")
    ray_train_workers: int = Field(2, gt=0, description="LightGBM workers of a distributed training.")
    partition_rows: int = Field(
        250_000, gt=0, description="Entity rows per partition of a distributed training-set join."
    )

    # Training: windows are counted back from the as-of time; they shrink to fit a shorter
    # labelled history (training/windows.py).
    seed: int = 42
    feature_warmup_days: float = Field(
        45.0,
        ge=0,
        description="Rows this close to the first data have incomplete feature windows "
        "(30 days of merchant history, and the labels inside it still maturing).",
    )
    train_days: int = Field(40, gt=0)
    valid_days: int = Field(10, gt=0)
    test_days: int = Field(10, gt=0)
    num_threads: int = Field(2, gt=0, description="LightGBM training threads (fixed: determinism).")
    num_boost_round: int = Field(600, gt=0)
    early_stopping_rounds: int = Field(40, gt=0)
    learning_rate: float = Field(0.05, gt=0, le=1)
    num_leaves: int = Field(31, gt=1)
    min_data_in_leaf: int = Field(50, gt=0)

    # Online store and serving.
    materialize_chunk_hours: int = Field(24, gt=0, description="Time span written per chunk.")
    api_key: SecretStr | None = Field(
        None, description="X-API-Key for admin routes; empty or blank is no key (routes closed)."
    )
    batch_max_rows: int = Field(1_000, gt=0, description="Largest /v1/predict/batch request.")
    redis_timeout_ms: int = Field(500, gt=0, description="Online store read timeout.")
    reload_poll_seconds: float = Field(10.0, ge=0, description="Champion alias check; 0: never.")
    score_chunk_rows: int = Field(100_000, gt=0, description="Rows per batch-scoring chunk.")
    log_predictions: bool = Field(True, description="Write the prediction log for the monitor.")
    log_flush_seconds: float = Field(1.0, gt=0, description="Prediction log write interval.")
    log_buffer_rows: int = Field(100_000, gt=0, description="Rows held before dropping.")

    # Safe deployment: the challenger beside the champion (serving.challenger).
    shadow_fraction: float = Field(0.0, ge=0, le=1, description="Share of rows the challenger scores in shadow.")
    shadow_queue_rows: int = Field(10_000, gt=0, description="Shadow rows waiting at most; more are dropped.")
    canary_fraction: float = Field(0.0, ge=0, le=1, description="Share of entities the challenger answers.")
    canary_min_rows: int = Field(200, gt=0, description="Canary rows before its health is judged.")
    canary_max_error_rate: float = Field(0.01, ge=0, le=1, description="Challenger failures that roll it back.")
    canary_max_p99_ms: float = Field(25.0, gt=0, description="Challenger scoring p99 that rolls it back.")
    canary_max_score_distance: float = Field(
        1.0, gt=0, description="Challenger vs champion scores on the same rows, in champion score std."
    )
    log_format: Literal["json", "text"] = Field(
        "json", description="Logs of the long-running processes (serve, monitor watch): JSON lines or text."
    )
    access_log: bool = Field(True, description="One log line per HTTP request; off for benchmarks.")
    missing_features_decision: MissingDecision = Field(
        "review",
        description="Decision when every stored feature of a row is missing or stale: review, flag, "
        "or pass (opt-in fail-open).",
    )
    max_body_bytes: int = Field(4 * 1024 * 1024, gt=0, description="Largest request body; larger is 413.")
    body_timeout_seconds: float = Field(10.0, gt=0, description="Time to receive a whole request body.")
    header_timeout_seconds: float = Field(10.0, gt=0, description="Time to receive a request's headers.")

    # Live data: pushed rows and the window features computed from them online.
    push_api_key: SecretStr | None = Field(None, description="X-API-Key of push routes only (the admin key works too).")
    push_max_rows: int = Field(10_000, gt=0, description="Largest push request, in rows.")
    push_timeout_ms: int = Field(10_000, gt=0, description="Redis write timeout of a push (fsync included).")
    push_max_future_seconds: float = Field(3_600.0, ge=0, description="Clock skew allowed for pushed event times.")
    window_lateness_hours: float = Field(
        24.0, ge=0, description="How late an event may arrive and still count in online windows."
    )
    window_max_events: int = Field(
        10_000, gt=0, description="Events kept online per entity and window view; beyond, the oldest go."
    )

    # Monitoring: thresholds are effect sizes; drift_overrides sets them per feature column,
    # e.g. FSML_DRIFT_OVERRIDES='{"customer_profile__age": {"psi": 0.5}}'.
    monitor_window_days: float = Field(7.0, gt=0, description="Days of traffic the monitor reads.")
    monitor_min_rows: int = Field(1_000, ge=1, description="Fewer rows give no drift verdict: too noisy.")
    monitor_min_hours: float = Field(
        24.0, ge=1, description="A shorter span of traffic gives no verdict: features follow the daily cycle."
    )
    monitor_segment_min_rows: int = Field(1_000, ge=1, description="Rows a segment needs in the window.")
    drift_segment_factor: float = Field(1.5, ge=1, description="Drift thresholds inside a segment, times the whole's.")
    drift_psi: float = Field(0.2, gt=0)
    drift_wasserstein: float = Field(0.1, gt=0, description="In reference standard deviations.")
    drift_js: float = Field(0.1, gt=0, le=1)
    drift_null_rate: float = Field(0.05, gt=0, le=1)
    drift_out_of_range: float = Field(0.05, gt=0, le=1)
    drift_scale_ratio: float = Field(5.0, gt=1, description="Every decile moved this factor: a unit change.")
    drift_stuck_share: float = Field(0.95, gt=0.5, le=1, description="One value in this share: stuck.")
    drift_tail_ratio: float = Field(1.5, gt=1, description="Decision rate or top-1% share moved this factor.")
    drift_tail_z: float = Field(3.0, gt=0, description="... and by this many (entity-clustered) std errors.")
    drift_score_wasserstein: float = Field(0.1, gt=0, description="Score drift, in reference std.")
    drift_min_features: int = Field(1, ge=1, description="Drifted features that mean drift.")
    drift_overrides: dict[str, dict[str, float]] = Field(default_factory=dict)
    performance_tolerance: float = Field(
        0.25, ge=0, lt=1, description="Allowed relative PR-AUC drop below the test figure."
    )
    min_labelled_positives: int = Field(20, ge=1, description="Positives needed to judge.")
    retrain_cooldown_hours: float = Field(6.0, ge=0, description="No automatic retraining sooner.")
    retrain_every_days: float = Field(7.0, ge=0, description="Scheduled retraining; 0: never.")
    service_url: str | None = Field(None, description="Service told to reload after a promotion.")

    # Promotion: both models are scored on the same most recent labelled window.
    promotion_window_days: int = Field(7, gt=0)
    promotion_margin: float = Field(
        0.0, ge=0, le=1, description="Challenger PR-AUC must reach champion's plus this margin."
    )
    min_pr_auc: float = Field(0.2, ge=0, le=1, description="Floor for the first champion.")
    min_roc_auc: float = Field(0.7, ge=0, le=1, description="Floor for the first champion.")

    @field_validator("home", "feature_repo", mode="after")
    @classmethod
    def _absolute(cls, path: Path) -> Path:
        return path.expanduser().resolve()

    @field_validator("serve_feature_services", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):  # JSON, as pydantic-settings writes lists
                import json

                return json.loads(text)
            return [name.strip() for name in text.split(",") if name.strip()]
        return value

    @field_validator("api_key", mode="before")
    @classmethod
    def _blank_key_is_no_key(cls, value: object) -> object:
        """``FSML_API_KEY=""`` (or spaces) must close the admin routes, not open them."""
        raw = value.get_secret_value() if isinstance(value, SecretStr) else value
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            return None
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, url: str) -> str:
        if not url.startswith(("redis://", "rediss://")):
            raise ValueError("must be a redis:// or rediss:// URL")
        return url

    @model_validator(mode="after")
    def _cluster_database(self) -> Settings:
        if self.redis_type == "redis_cluster" and (parse_url(self.redis_url).get("db") or 0) != 0:
            raise ValueError("REDIS_URL: a Redis Cluster has only database 0")
        return self

    @model_validator(mode="after")
    def _feature_repo_exists(self) -> Settings:
        if not (self.feature_repo / "feature_store.yaml").is_file():
            raise ValueError(f"feature_repo {self.feature_repo} has no feature_store.yaml")
        return self

    def for_service(self, name: str | None) -> Settings:
        """These settings with ``name`` as the feature service (the model) they work on."""
        if not name or name == self.feature_service:
            return self
        return self.model_copy(update={"feature_service": name})

    @property
    def served_services(self) -> list[str]:
        """What ``fsml serve`` hosts: the default model first, then the others."""
        names = self.serve_feature_services or [self.feature_service]
        first = self.feature_service if self.feature_service in names else names[0]
        return list(dict.fromkeys([first, *names]))

    # Derived locations. Nothing is created here: stages create what they write. State of a
    # model (prediction log, monitor history, triggers, retraining) is kept per feature service.
    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def raw_dir(self) -> Path:
        return self.data_dir / "raw"

    @property
    def features_dir(self) -> Path:
        return self.data_dir / "features"

    @property
    def prediction_log_dir(self) -> Path:
        return self.home / "logs" / "predictions" / self.env / self.feature_service

    @property
    def challenger_log_dir(self) -> Path:
        """Rows the challenger scored live (shadow or canary), beside the champion's score."""
        return self.prediction_log_dir / "challenger"

    @property
    def monitoring_dir(self) -> Path:
        return self.home / "monitoring" / self.env / self.feature_service

    @property
    def monitoring_reports_dir(self) -> Path:
        return self.reports_dir / "monitoring" / self.env / self.feature_service

    @property
    def reports_dir(self) -> Path:
        return self.home / "reports"

    @property
    def mlflow_dir(self) -> Path:
        return self.home / "mlflow"

    @cached_property
    def tracking_uri(self) -> str:
        return self.mlflow_tracking_uri or f"sqlite:///{self.mlflow_dir / 'mlflow.db'}"

    @property
    def artifact_root(self) -> str:
        return (self.mlflow_dir / "artifacts").as_uri()

    @property
    def feast_project(self) -> str:
        """The repo's own project name with the environment as a suffix: ``fraud_dev``."""
        from fsml.repo import project_name

        return project_name(self.feature_repo, self.feast_environ(), self.env)

    @property
    def experiment_name(self) -> str:
        return f"fsml-{self.env}"

    def model_name(self, feature_service: str) -> str:
        """Registered model name: one per feature service and environment."""
        return f"fsml-{self.env}-{feature_service}"

    def feast_environ(self) -> dict[str, str]:
        """Variables that ``feature_store.yaml`` and the feature definitions expand."""
        return {"FSML_HOME": str(self.home), "FSML_ENV": self.env, "REDIS_URL": self.redis_url}

    def export(self) -> None:
        """Put the resolved values into ``os.environ`` for Feast and child processes."""
        os.environ.update(self.feast_environ())
