"""Shared fixtures: a real redis-server, and a small seeded world built once per session.

The world is real: generated Parquet files, DuckDB-built feature tables, a Feast registry, and
(for the tests that need one) an MLflow SQLite store with a trained model, all in tmp dirs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import feast  # noqa: F401,I001  (imported before pytest's warning filters: Feast resets them at import)
import pytest
from fsml.examples.fraud.synthetic import GeneratorConfig

import fsml  # noqa: F401  (turns off typeguard before Feast is imported)
from fsml.redis_server import RedisCluster, RedisServer
from fsml.settings import Settings

END = date(2026, 11, 1)
API_KEY = "test-admin-key"
BATCH_MAX = 50
AS_OF = datetime(2026, 11, 1, tzinfo=UTC)
SMALL = GeneratorConfig(customers=400, merchants=80, days=70, end_date=END, seed=7)

TEST_SETTINGS: dict[str, Any] = {
    "env": "dev",
    "train_days": 20,  # with the 30-day warm-up, the 70 days of SMALL exactly
    "valid_days": 10,
    "test_days": 10,
    "promotion_window_days": 10,
    "num_boost_round": 150,
    "early_stopping_rounds": 20,
    "min_data_in_leaf": 20,
    "feature_warmup_days": 30,
    "log_flush_seconds": 0.5,
}


# The session server's limits, small so that tests of them are quick.
MAX_BODY = 256 * 1024
READ_TIMEOUT = 2.0
SERVER_ENV = {
    "FSML_BATCH_MAX_ROWS": str(BATCH_MAX),
    "FSML_MAX_BODY_BYTES": str(MAX_BODY),
    "FSML_HEADER_TIMEOUT_SECONDS": str(READ_TIMEOUT),
    "FSML_BODY_TIMEOUT_SECONDS": str(READ_TIMEOUT),
}


def feast_store(home: Path, objects: list, **config: Any) -> Any:
    """A Feast store of its own in ``home`` (project "diff", local provider, v3 entity keys, the
    rest from ``config``) with ``objects`` applied: for differential tests against stock Feast."""
    from feast import FeatureStore, RepoConfig

    home.mkdir()
    store = FeatureStore(
        config=RepoConfig(
            project="diff",
            provider="local",
            registry=str(home / "registry.db"),
            repo_path=str(home),
            entity_key_serialization_version=3,
            **config,
        )
    )
    store.apply(objects)
    return store


def make_settings(home: Path, redis_url: str = "redis://127.0.0.1:6379/0", **overrides: Any) -> Settings:
    return Settings(home=home, redis_url=redis_url, mlflow_tracking_uri=None, **{**TEST_SETTINGS, **overrides})


def redis_contents(client: Any, skip: tuple[bytes, ...] = ()) -> dict[bytes, object]:
    """Every key of one Redis server and its value, but those starting with ``skip``: Feast's
    hashes, the window views' event sets (with scores) and watermarks."""
    read = {
        b"hash": client.hgetall,
        b"zset": lambda k: client.zrange(k, 0, -1, withscores=True),
        b"string": client.get,
    }
    keys = [k for k in client.scan_iter(count=1000) if not (skip and k.startswith(skip))]
    return {key: read[client.type(key)](key) for key in keys}


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with RedisServer(tmp_path_factory.mktemp("redis"), persist=True) as server:
        yield server


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    """A real 3-master Redis Cluster (redis-server processes, ``redis-cli --cluster create``)."""
    with RedisCluster(tmp_path_factory.mktemp("redis-cluster"), masters=3) as cluster:
        yield cluster


@dataclass
class RayCluster:
    cluster: Any  # ray.cluster_utils.Cluster
    worker: Any  # the worker node, which a test may kill

    def replace_worker(self) -> None:
        """A new worker node after a test killed the first one."""
        self.worker = self.cluster.add_node(**RAY_WORKER)
        self.cluster.wait_for_nodes()


RAY_NODE = {"num_cpus": 1, "object_store_memory": 80 * 2**20}
RAY_WORKER = {**RAY_NODE, "resources": {"worker_node": 1}}


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[RayCluster]:
    """A Ray cluster of two nodes on this machine, a head and a worker, one CPU each, started
    once per session: ``FSML_ENGINE=ray`` work in the session runs on it."""
    pytest.importorskip("ray", reason="the ray extra is not installed (uv sync --extra ray)")
    import ray
    from ray.cluster_utils import Cluster

    before = _ray_workers()
    cluster = Cluster(initialize_head=True, head_node_args={**RAY_NODE, "include_dashboard": False})
    worker = cluster.add_node(**RAY_WORKER)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    try:
        yield RayCluster(cluster, worker)
    finally:
        ray.shutdown()
        cluster.shutdown()
        # An actor process can outlive its killed node (seen: Ray Train's TrainController,
        # reparented to init): whatever this cluster started goes with it.
        for pid in _ray_workers() - before:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _ray_workers() -> set[int]:
    """Pids of Ray worker processes on this machine (their command line starts with ``ray::``)."""
    found = set()
    for entry in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            if (entry / "cmdline").read_bytes().startswith(b"ray::"):
                found.add(int(entry.name))
    return found


@dataclass
class World:
    settings: Settings
    generator: GeneratorConfig

    @property
    def home(self) -> Path:
        return self.settings.home


def build_world(home: Path, redis_url: str, generator: GeneratorConfig = SMALL, **overrides: Any) -> World:
    """Generated data, its history pushed (offline) up to the data's end, tables built."""
    from fsml.examples.fraud.history import push_history
    from fsml.examples.fraud.synthetic import generate, save
    from fsml.features.build import build_features

    from fsml.featurestore import apply_repo

    settings = make_settings(home, redis_url, **overrides)
    save(generate(generator), generator, settings.raw_dir)
    apply_repo(settings)
    push_history(settings, generator.end)
    build_features(settings, until=generator.end)
    return World(settings, generator)


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> World:
    """Generated data, feature tables and a Feast registry; read-only for tests."""
    return build_world(tmp_path_factory.mktemp("world"), redis_server.url)


@pytest.fixture(scope="session")
def trained(world: World):
    """One registered training run on the session world."""
    from fsml.training.pipeline import train

    return train(world.settings, as_of=AS_OF)


@dataclass
class Champion:
    settings: Settings
    outcome: Any  # training.pipeline.TrainOutcome


@pytest.fixture(scope="session")
def champion(world: World) -> Champion:
    """A promoted model in the ``staging`` environment, its features materialized up to AS_OF.

    A separate environment: its own Feast project, MLflow names and Redis keys, so these tests
    cannot disturb the ``dev`` ones that share the session world.
    """
    from fsml.serving.materialize import materialize
    from fsml.training.pipeline import train
    from fsml.training.promote import promote
    from pydantic import SecretStr

    from fsml.featurestore import apply_repo

    settings = world.settings.model_copy(
        update={"env": "staging", "api_key": SecretStr(API_KEY), "reload_poll_seconds": 0.5}
    )
    apply_repo(settings)
    outcome = train(settings, as_of=AS_OF)
    assert promote(settings, as_of=AS_OF).promoted
    materialize(settings, end=AS_OF)
    return Champion(settings, outcome)


@pytest.fixture(scope="session")
def server(champion: Champion):
    """``fsml serve`` as a real process on the champion."""
    from fsml.serving.process import ServerProcess

    with ServerProcess(champion.settings, extra_env=SERVER_ENV) as process:
        yield process


@pytest.fixture
def own_world(tmp_path: Path, world: World) -> World:
    """A private copy of the session world's data and registry, for tests that change or break
    it (pushing excepted: its Redis is the session world's)."""
    from fsml.featurestore import apply_repo

    home = tmp_path / "home"
    for name in ("raw", "features"):
        version = home / "data" / f"{name}.versions" / "copy"
        shutil.copytree(world.settings.data_dir / name, version)
        (home / "data" / name).symlink_to(version.relative_to(home / "data"))
    shutil.copytree(world.settings.data_dir / "events", home / "data" / "events", copy_function=os.link)
    settings = make_settings(home, world.settings.redis_url)
    apply_repo(settings)
    return World(settings, world.generator)


def live_settings(champion: Champion, home: Path, redis_url: str, **overrides: Any) -> Settings:
    """A home of its own for tests that push: the session world's reference tables and feature
    tables (linked), a copy of its pushed rows, its own Feast registry and Redis, and the
    staging champion from the session's MLflow store. Materialized up to AS_OF."""
    from fsml.serving.materialize import materialize

    from fsml.featurestore import apply_repo

    source = champion.settings
    for name in ("raw", "features"):
        version = home / "data" / f"{name}.versions" / "copy"
        shutil.copytree(source.data_dir / name, version, copy_function=os.link)
        (home / "data" / name).symlink_to(version.relative_to(home / "data"))
    shutil.copytree(source.data_dir / "events", home / "data" / "events", copy_function=os.link)
    settings = champion.settings.model_copy(
        update={"home": home, "redis_url": redis_url, "mlflow_tracking_uri": source.tracking_uri, **overrides}
    )
    apply_repo(settings)
    materialize(settings, end=AS_OF)
    return settings


@dataclass
class Repo:
    """A repo other than the fraud example, with promoted champions and online features."""

    settings: Settings  # of the default model
    outcomes: dict[str, Any]  # training.pipeline.TrainOutcome per feature service
    as_of: datetime

    @property
    def home(self) -> Path:
        return self.settings.home


def champions(settings: Settings, services: tuple[str, ...], as_of: datetime) -> dict[str, Any]:
    """Apply the repo, train and promote a model per service, materialize up to ``as_of``."""
    from fsml.serving.materialize import materialize
    from fsml.training.pipeline import train
    from fsml.training.promote import promote

    from fsml.featurestore import apply_repo

    apply_repo(settings)
    outcomes = {}
    for name in services:
        outcomes[name] = train(settings.for_service(name), as_of=as_of)
        assert promote(settings.for_service(name), as_of=as_of).promoted
    materialize(settings, end=as_of)
    return outcomes


@pytest.fixture(scope="session")
def parcels(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> Repo:
    """The parcel example (another domain, two feature services), used from another directory."""
    from fsml.features.build import build_features
    from fsml.serving.push import push_file

    from fsml.featurestore import apply_repo
    from tests.repos import PARCEL_SERVICES, PARCELS_AS_OF, parcels_repo

    base = tmp_path_factory.mktemp("parcels")
    with contextlib.chdir(base):
        repo = parcels_repo(base)
        settings = make_settings(base / "home", redis_server.url, feature_repo=repo, feature_service=PARCEL_SERVICES[0])
        apply_repo(settings)  # the dispatches before the champions' time, pushed as a backfill
        pushed = push_file(settings, "dispatches", repo / "data" / "dispatches.parquet", offline=True,
                           before=PARCELS_AS_OF)  # fmt: skip
        assert pushed["accepted"] > 1_000 and pushed["duplicates"] == 0
        build_features(settings, until=PARCELS_AS_OF)
        outcomes = champions(settings, PARCEL_SERVICES, PARCELS_AS_OF)
    return Repo(settings, outcomes, PARCELS_AS_OF)


@pytest.fixture(scope="session")
def drivers(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> Repo:
    """A repo made by ``feast init`` (Feast's own template, its data ending now), plus labels."""
    from tests.repos import feast_init_repo

    base = tmp_path_factory.mktemp("feast_init")
    as_of = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    with contextlib.chdir(base):
        repo = feast_init_repo(base)
        settings = make_settings(
            base / "home", redis_server.url, feature_repo=repo, feature_service="driver_activity_v1"
        )
        outcomes = champions(settings, ("driver_activity_v1",), as_of)
    return Repo(settings, outcomes, as_of)
