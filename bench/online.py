"""Online serving: fsml's /v1/predict (features + model) against stock ``feast serve``
(features only), with wrk at saturation, random customers, on the same Redis and data."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from statistics import median
from typing import Any

import httpx

from bench.common import BenchWorld
from bench.loadgen import wrk
from fsml.redis_server import free_port
from serving.process import ServerProcess, settings_environ

log = logging.getLogger(__name__)


class FeastServer:
    """Stock ``feast serve`` on the same repo, registry and Redis."""

    def __init__(self, world: BenchWorld) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.world = world
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> FeastServer:
        feast = Path(sys.executable).parent / "feast"
        settings = self.world.settings
        log_path = settings.home / "logs" / f"feast-serve-{self.port}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        env = settings_environ(settings)
        with open(log_path, "wb") as log_file:
            self._process = subprocess.Popen(
                [
                    str(feast),
                    "-c",
                    str(settings.feature_repo),
                    "serve",
                    "-p",
                    str(self.port),
                    "--no-access-log",
                ],
                env=env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.3)
        raise RuntimeError(f"feast serve did not start: {log_path.read_text()[-800:]}")

    def __exit__(self, *exc: object) -> None:
        if self._process:
            self._process.terminate()
            self._process.wait(timeout=30)


def feature_refs(world: BenchWorld) -> list[str]:
    """The stored features of the served model (Feast cannot serve our python on-demand view
    with full names, and its request-time part is not a lookup)."""
    from fsml.featurestore import describe_service, open_store

    spec = describe_service(open_store(world.settings), world.settings.feature_service)
    return [f"{f.view}:{f.name}" for f in spec.features if not f.on_demand]


def run(world: BenchWorld, seconds: float = 10.0, repeats: int = 1) -> dict[str, Any]:
    customers, merchants = world.config.customers, world.config.merchants
    refs = json.dumps(feature_refs(world))
    results: dict[str, Any] = {}

    def measure(name: str, url: str, mode: str, connections: int) -> None:
        wrk(url, mode, connections, 2, customers, merchants, refs)  # warm-up
        runs = [wrk(url, mode, connections, seconds, customers, merchants, refs) for _ in range(repeats)]
        results[name] = {
            "connections": connections,
            "rps": median(r["rps"] for r in runs),
            "p50_ms": median(r["p50_ms"] for r in runs),
            "p99_ms": median(r["p99_ms"] for r in runs),
            "errors": sum(r["errors"] for r in runs),
            "runs": runs,
        }
        log.info(
            "%s: %.0f req/s, p50 %.2f ms, p99 %.2f ms",
            name,
            results[name]["rps"],
            results[name]["p50_ms"],
            results[name]["p99_ms"],
        )

    with ServerProcess(world.settings.model_copy(update={"reload_poll_seconds": 0.0})) as server:
        for connections in (1, 8):
            measure(f"fsml_predict_c{connections}", server.url, "predict", connections)
    with FeastServer(world) as feast:
        sample = httpx.post(
            feast.url + "/get-online-features",
            timeout=10,
            json={
                "features": json.loads(refs),
                "entities": {"customer_id": [3], "merchant_id": [5]},
            },
        )
        sample.raise_for_status()
        for connections in (1, 8):
            measure(f"feast_serve_c{connections}", feast.url, "feast", connections)
    return results


if __name__ == "__main__":
    from bench.common import prepare
    from fsml.console import setup_logging

    setup_logging()
    home = Path(os.environ.get("FSML_BENCH_HOME", ".fsml/bench")).resolve()
    world = prepare(home)
    try:
        print(json.dumps(run(world, seconds=float(os.environ.get("BENCH_SECONDS", "10"))), indent=2))
    finally:
        world.redis.stop()
