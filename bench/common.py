"""A prepared world for benchmarks (default data, a champion, a loaded online store), and the
machine's description for the report."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, date, datetime
from importlib.metadata import version
from pathlib import Path

import redis
from fsml.examples.fraud.synthetic import GeneratorConfig

import fsml  # noqa: F401  (typeguard switch before Feast)
from fsml.redis_server import RedisServer, server_binary
from fsml.settings import Settings

END = date(2026, 11, 1)  # fixed, so that runs on different days measure the same data
CONFIG = GeneratorConfig(end_date=END)


@dataclass
class BenchWorld:
    settings: Settings
    redis: RedisServer
    config: GeneratorConfig

    @property
    def end(self) -> datetime:
        return datetime.combine(END, datetime.min.time(), tzinfo=UTC)


def prepare(home: Path) -> BenchWorld:
    """Data, features, registry, champion and online store; reused when already built."""
    from fsml.examples.fraud.history import push_history
    from fsml.examples.fraud.synthetic import generate, save
    from fsml.features.build import build_features
    from fsml.serving.materialize import materialize
    from fsml.training.pipeline import train
    from fsml.training.promote import promote

    from fsml.featurestore import apply_repo

    server = RedisServer(home / "redis", persist=True).start()
    settings = Settings(home=home, redis_url=server.url, env="dev")
    settings.export()
    marker = home / "bench-ready.json"
    wanted = json.dumps({**CONFIG.describe(), "layout": "pushed events"}, sort_keys=True)
    if not marker.exists() or marker.read_text() != wanted:
        end = datetime.combine(END, datetime.min.time(), tzinfo=UTC)
        for stale in ("data", "feast", "mlflow"):  # a world of its own: pushed ids are remembered
            shutil.rmtree(home / stale, ignore_errors=True)
        redis.Redis.from_url(settings.redis_url).flushall()
        save(generate(CONFIG), CONFIG, settings.raw_dir)
        apply_repo(settings)
        push_history(settings, end)
        build_features(settings, until=end)
        train(settings, as_of=end)
        promote(settings, force=True, as_of=end)
        materialize(settings, end=end)
        marker.write_text(wanted)
    return BenchWorld(settings, server, CONFIG)


def machine() -> dict[str, object]:
    cpu = ""
    if Path("/proc/cpuinfo").exists():
        cpu = next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            "",
        )
    memory = ""
    if Path("/proc/meminfo").exists():
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f"{kb / 1024 / 1024:.1f} GiB"
    redis = subprocess.run([server_binary(), "--version"], capture_output=True, text=True).stdout.split()[2:3]
    wrk = shutil.which("wrk")
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory": memory,
        "os": platform.platform(),
        "python": platform.python_version(),
        "redis": redis[0].removeprefix("v=") if redis else "",
        "wrk": bool(wrk),
        "packages": {
            p: version(p)
            for p in (
                "feast",
                "duckdb",
                "lightgbm",
                "fastapi",
                "uvicorn",
                "mlflow",
                "redis",
                "pandas",
                "pyarrow",
            )
        },
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def live_world(world: BenchWorld, name: str, db: int, **overrides: object) -> Settings:
    """A copy of the prepared world that pushes may change: the data linked (parts are never
    rewritten), its own Feast registry, its own Redis database, materialized up to the end.
    Made afresh at every run, so a run never sees the rows an earlier one pushed."""
    from fsml.serving.materialize import materialize

    from fsml.featurestore import apply_repo

    home = world.settings.home / "live" / name
    shutil.rmtree(home, ignore_errors=True)
    source = world.settings.data_dir
    for part in ("raw", "features"):
        version = home / "data" / f"{part}.versions" / "copy"
        shutil.copytree(source / part, version, copy_function=os.link)
        (home / "data" / part).symlink_to(version.relative_to(home / "data"))
    shutil.copytree(source / "events", home / "data" / "events", copy_function=os.link)
    url = f"{world.settings.redis_url.rsplit('/', 1)[0]}/{db}"
    redis.Redis.from_url(url).flushdb()
    settings = world.settings.model_copy(
        update={"home": home, "redis_url": url, "mlflow_tracking_uri": world.settings.tracking_uri, **overrides}
    )
    settings.export()
    apply_repo(settings)
    materialize(settings, end=world.end)
    world.settings.export()
    return settings


def status_mb(field: str) -> float:
    """A memory figure of this process from ``/proc/self/status`` (``VmRSS``, ``VmHWM``), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)
