"""A user's feature_store.yaml as fsml runs it: the repo's name, the platform's stores, its paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from fsml.errors import FsmlError
from fsml.repo import effective_config
from fsml.settings import Settings

FEAST_INIT_YAML = """project: drivers
registry: data/registry.db
provider: local
online_store:
    type: sqlite
    path: data/online_store.db
entity_key_serialization_version: 3
"""


def _settings(tmp_path: Path, yaml: str, **overrides: object) -> Settings:
    repo = tmp_path / "repo"
    repo.mkdir(exist_ok=True)
    (repo / "feature_store.yaml").write_text(yaml)
    return Settings(home=tmp_path / "home", feature_repo=repo, redis_url="redis://10.0.0.7:6390/3", **overrides)


def test_a_feast_init_config_gets_the_platform_stores_and_its_own_paths(tmp_path: Path) -> None:
    settings = _settings(tmp_path, FEAST_INIT_YAML, env="staging")
    config = effective_config(settings)
    assert config["project"] == settings.feast_project == "drivers_staging"  # own name, environment suffix
    assert config["registry"] == {"path": str(tmp_path / "repo" / "data" / "registry.db")}  # the repo's, not cwd's
    assert config["online_store"] == {
        "type": "fsml.stores.redis.RedisOnlineStore",
        "connection_string": "redis://10.0.0.7:6390/3",
    }
    assert config["offline_store"] == {"type": "fsml.stores.duckdb.DuckDBOfflineStore"}
    assert config["batch_engine"] == {"type": "fsml.stores.engine.FsmlComputeEngine"}
    assert config["coerce_tz_aware"] is False


def test_a_redis_repo_keeps_its_options_and_other_stores_are_kept(tmp_path: Path) -> None:
    yaml = (
        "project: p\nregistry:\n  registry_type: sql\n  path: postgresql://db/feast\nprovider: local\n"
        "online_store:\n  type: redis\n  connection_string: elsewhere:6379\n  key_ttl_seconds: 3600\n"
        "offline_store:\n  type: bigquery\n"
    )
    config = effective_config(_settings(tmp_path, yaml))
    assert config["online_store"]["key_ttl_seconds"] == 3600
    assert config["online_store"]["connection_string"] == "redis://10.0.0.7:6390/3"  # one Redis: REDIS_URL
    assert config["offline_store"] == {"type": "bigquery"} and "batch_engine" not in config
    assert config["registry"]["path"] == "postgresql://db/feast"


def test_a_redis_cluster_is_the_platform_setting_not_the_repos(tmp_path: Path) -> None:
    yaml = FEAST_INIT_YAML.replace("type: sqlite", "type: redis\n    redis_type: redis_cluster")
    assert "redis_type" not in effective_config(_settings(tmp_path, yaml))["online_store"]
    clustered = _settings(tmp_path, FEAST_INIT_YAML).model_copy(
        update={"redis_url": "redis://10.0.0.7:7000/0", "redis_type": "redis_cluster"}
    )
    assert effective_config(clustered)["online_store"]["redis_type"] == "redis_cluster"
    with pytest.raises(ValueError, match="only database 0"):
        Settings(feature_repo=clustered.feature_repo, redis_url="redis://h:7000/3", redis_type="redis_cluster")


def test_variables_expand_and_a_missing_project_is_named(tmp_path: Path) -> None:
    settings = _settings(tmp_path, "project: shop\nregistry: ${FSML_HOME}/feast/r_${FSML_ENV}.db\nprovider: local\n")
    assert effective_config(settings)["registry"]["path"] == f"{settings.home}/feast/r_dev.db"
    broken = _settings(tmp_path, "registry: r.db\n")
    with pytest.raises(FsmlError, match="names no project"):
        effective_config(broken)
