"""Online serving: fsml's ``/v1/predict`` (features and model) against stock ``feast serve``
(features only) on the same repo, Redis and data, with the in-process floor.

- fixed offered rate (1,000 requests/s, open loop, ``bench/openload.c``): p50 and p99;
- saturation with 1, 8 and 32 connections (wrk, closed loop), random customers and merchants;
- ``/v1/predict/batch`` with 100 rows per request;
- stock ``feast serve`` fetching the same stored features, at the same connection counts;
- the floor: redis-py pipelined ``HMGET``s and ``Booster.predict`` in one process, no HTTP.

Requests carry the data set's end as their time, so the features are as fresh as they would be
live (the bench data ends on a fixed date).
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from statistics import median
from typing import Any

import httpx
import numpy as np
from fsml.serving.process import ServerProcess, settings_environ

from bench.common import BenchWorld
from bench.loadgen import wrk
from fsml.redis_server import free_port
from fsml.repo import write_effective_yaml

log = logging.getLogger(__name__)
SOURCE = Path(__file__).with_name("openload.c")


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
        command = [str(feast), "-c", str(settings.feature_repo), "serve", "-p", str(self.port), "--no-access-log"]
        # the repo as fsml runs it (its project with the environment's suffix), as `fsml env` sets up
        env = {**settings_environ(settings), "FEAST_FS_YAML_FILE_PATH": str(write_effective_yaml(settings))}
        with open(log_path, "wb") as log_file:
            self._process = subprocess.Popen(command, env=env, stdout=log_file, stderr=subprocess.STDOUT)
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


def openload_binary(home: Path) -> Path:
    """``bench/openload.c`` compiled with the system's C compiler (once per source change)."""
    target = home / "bin" / "openload"
    if target.exists() and target.stat().st_mtime >= SOURCE.stat().st_mtime:
        return target
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise RuntimeError("no C compiler for bench/openload.c: apt-get install gcc")
    target.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([compiler, "-O2", "-o", str(target), str(SOURCE)], check=True)
    return target


def openload(binary: Path, url: str, rate: int, seconds: float, world: BenchWorld, stamp: str) -> dict[str, Any]:
    host, port = url.removeprefix("http://").split(":")
    command = [
        str(binary), host, port, str(rate), str(seconds), "32",
        str(world.config.customers), str(world.config.merchants), "/v1/predict", stamp,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    line = next((x for x in done.stdout.splitlines() if x.startswith("OPENLOAD_JSON ")), None)
    if line is None:
        raise RuntimeError(f"openload gave no summary: {done.stdout[-500:]} {done.stderr[-500:]}")
    measured = json.loads(line.removeprefix("OPENLOAD_JSON "))
    return {**measured, "rps": measured["achieved_rps"]}


class HelloServer:
    """``bench/hello.py``: an HTTP server that does no work, run as ``fsml serve`` runs."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> HelloServer:
        self._process = subprocess.Popen([sys.executable, "-m", "bench.hello", str(self.port)])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                httpx.post(self.url + "/v1/predict", json={}, timeout=1)
                return self
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError("bench.hello did not start")

    def __exit__(self, *exc: object) -> None:
        if self._process:
            self._process.terminate()
            self._process.wait(timeout=30)


def floor(world: BenchWorld, requests: int = 5_000) -> dict[str, Any]:
    """redis-py (hiredis parser) pipelined HMGETs of the model's features, then LightGBM's
    ``Booster.predict`` on one row with one thread: the least any service can do per request."""
    import redis
    from fsml.serving.scorer import load_champion

    from fsml.stores.encoding import decode_value

    scorer = load_champion(world.settings)
    client = redis.Redis.from_url(world.settings.redis_url)
    booster, width = scorer.bundle.booster, len(scorer.bundle.card.columns)
    rng = np.random.default_rng(5)
    rows = [
        {"customer_id": int(c), "merchant_id": int(m)}
        for c, m in zip(
            rng.integers(1, world.config.customers + 1, requests),
            rng.integers(1, world.config.merchants + 1, requests),
            strict=True,
        )
    ]
    latencies = []
    began_all = time.perf_counter()
    for row in rows:
        began = time.perf_counter()
        pipe = client.pipeline(transaction=False)
        for key, fields in scorer.reader.commands([row]):
            pipe.hmget(key, fields)
        values = [decode_value(v) for reply in pipe.execute() for v in reply]
        vector = np.full((1, width), np.nan)
        numbers = [v for v in values if isinstance(v, float | int)][:width]
        vector[0, : len(numbers)] = numbers
        booster.predict(vector, num_threads=1)
        latencies.append(time.perf_counter() - began)
    elapsed = time.perf_counter() - began_all
    ms = np.array(latencies) * 1000
    return {"rps": requests / elapsed, "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99))}


def _summarise(runs: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        **extra,
        "rps": median(r["rps"] for r in runs),
        "p50_ms": median(r["p50_ms"] for r in runs),
        "p99_ms": median(r["p99_ms"] for r in runs),
        "errors": sum(r["errors"] for r in runs),
        "runs": runs,
    }


def run(world: BenchWorld, seconds: float = 5.0, repeats: int = 5, workers: int = 2) -> dict[str, Any]:
    customers, merchants = world.config.customers, world.config.merchants
    refs = json.dumps(feature_refs(world))
    stamp = world.end.isoformat().replace("+00:00", "Z")
    results: dict[str, Any] = {}

    def measure(name: str, once: Callable[[float], dict[str, Any]], **extra: Any) -> None:
        once(2)  # warm-up
        results[name] = _summarise([once(seconds) for _ in range(repeats)], **extra)
        r = results[name]
        log.info("%s: %.0f req/s, p50 %.2f ms, p99 %.2f ms", name, r["rps"], r["p50_ms"], r["p99_ms"])

    def load(url: str, mode: str, connections: int) -> Callable[[float], dict[str, Any]]:
        return lambda s: wrk(url, mode, connections, s, customers, merchants, refs, stamp)

    binary = openload_binary(world.settings.home)

    def fixed_rate(url: str) -> Callable[[float], dict[str, Any]]:
        return lambda s: openload(binary, url, 1000, s, world, stamp)

    settings = world.settings.model_copy(update={"reload_poll_seconds": 0.0, "access_log": False})
    with ServerProcess(settings, workers=workers) as server:
        check = httpx.post(server.url + "/v1/predict", json={"customer_id": 1, "merchant_id": 1, "amount": 5.0,
                                                               "timestamp": stamp}, timeout=10)  # fmt: skip
        check.raise_for_status()

        measure("fsml_predict_1000rps", fixed_rate(server.url), offered_rps=1000)
        with HelloServer() as hello:
            measure("hello_1000rps", fixed_rate(hello.url), offered_rps=1000)
        for connections in (1, 8, 32):
            measure(f"fsml_predict_c{connections}", load(server.url, "predict", connections), connections=connections)
        measure("fsml_batch100_c8", load(server.url, "batch", 8), connections=8)
        results["fsml_predict_sample"] = check.json()
    with FeastServer(world) as feast:
        sample = httpx.post(
            feast.url + "/get-online-features",
            timeout=10,
            json={"features": json.loads(refs), "entities": {"customer_id": [3], "merchant_id": [5]}},
        )
        sample.raise_for_status()
        for connections in (1, 8, 32):
            measure(f"feast_serve_c{connections}", load(feast.url, "feast", connections), connections=connections)
    floors = [floor(world) for _ in range(repeats)]
    results["floor_inprocess"] = _summarise([{**f, "errors": 0} for f in floors])
    best_fsml = max(results[f"fsml_predict_c{c}"]["rps"] for c in (1, 8, 32))
    best_feast = max(results[f"feast_serve_c{c}"]["rps"] for c in (1, 8, 32))
    results["summary"] = {
        "workers": workers,
        "speedup_vs_feast_serve": best_fsml / best_feast,
        "speedup_vs_feast_serve_by_connections": {
            c: results[f"fsml_predict_c{c}"]["rps"] / results[f"feast_serve_c{c}"]["rps"] for c in (1, 8, 32)
        },
        "p99_ms_at_1000rps": results["fsml_predict_1000rps"]["p99_ms"],
        "hello_p99_ms_at_1000rps": results["hello_1000rps"]["p99_ms"],
        "batch100_rows_per_s": results["fsml_batch100_c8"]["rps"] * 100,
    }
    return results
