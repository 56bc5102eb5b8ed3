"""Settings validation and all-or-nothing writes."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from fsml.atomic import atomic_path, staged_dir
from fsml.settings import Settings


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FSML_HOME", str(tmp_path / "h"))
    monkeypatch.setenv("FSML_ENV", "staging")
    monkeypatch.setenv("REDIS_URL", "redis://example:6390/2")
    settings = Settings()
    assert settings.home == (tmp_path / "h").resolve()
    assert settings.feast_project == "fraud_staging"  # the repo's own project, then the environment
    assert settings.experiment_name == "fsml-staging"
    assert settings.model_name("svc") == "fsml-staging-svc"
    assert settings.tracking_uri == f"sqlite:///{tmp_path / 'h' / 'mlflow' / 'mlflow.db'}"
    assert not (tmp_path / "h").exists()  # nothing is created by reading settings


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("FSML_ENV", "qa"),
        ("REDIS_URL", "localhost:6379"),
        ("FSML_TRAIN_DAYS", "0"),
        ("FSML_FEATURE_REPO", "/nowhere"),
    ],
)
def test_invalid_settings_are_rejected(monkeypatch: pytest.MonkeyPatch, var: str, value: str) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(ValidationError):
        Settings()


def test_environments_do_not_share_names() -> None:
    dev, prod = Settings(env="dev"), Settings(env="prod")
    assert dev.feast_project != prod.feast_project
    assert dev.experiment_name != prod.experiment_name
    assert dev.model_name("s") != prod.model_name("s")


def test_state_of_each_model_is_kept_apart(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FSML_HOME", str(tmp_path))
    monkeypatch.setenv("FSML_SERVE_FEATURE_SERVICES", "late_v1, late_v2")
    settings = Settings(feature_service="late_v2")
    assert settings.served_services == ["late_v2", "late_v1"]  # the default model first
    v1 = settings.for_service("late_v1")
    assert v1.prediction_log_dir == tmp_path.resolve() / "logs" / "predictions" / "dev" / "late_v1"
    assert v1.monitoring_dir != settings.monitoring_dir and v1.monitoring_reports_dir != settings.monitoring_reports_dir
    assert settings.for_service(None) is settings
    monkeypatch.setenv("FSML_SERVE_FEATURE_SERVICES", '["a", "b"]')  # as a child process gets a list
    assert Settings().serve_feature_services == ["a", "b"]


def test_atomic_path_keeps_the_old_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "f.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_staged_dir_publishes_all_or_nothing(tmp_path: Path) -> None:
    target = tmp_path / "tables"
    with staged_dir(target) as stage:
        (stage / "a").write_text("1")
        (stage / "b").write_text("1")
    first = target.resolve()
    with pytest.raises(RuntimeError), staged_dir(target) as stage:
        (stage / "a").write_text("2")
        raise RuntimeError("crash")
    assert target.resolve() == first and (target / "a").read_text() == "1"
    with staged_dir(target) as stage:
        (stage / "a").write_text("3")
    assert (target / "a").read_text() == "3" and not (target / "b").exists()
    assert len(list((tmp_path / "tables.versions").iterdir())) == 1  # old versions are removed
