"""A/B of two builds of the scoring service: server CPU time per ``/v1/predict`` request at a
fixed 1,000 requests/s (``bench/openload.c``), one worker each, same Redis, model and requests,
runs interleaved so that the noise of a shared machine falls on both alike.

    python -m bench.ab /path/to/main/.venv/bin/fsml .venv/bin/fsml [--rounds 10]

Uses the world of ``make bench`` (``FSML_BENCH_HOME``, default ``.fsml/bench``): run the online
part once first. CPU time per request is steadier than latency when others share the cores.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import time
from pathlib import Path

import httpx
import typer
from fsml.serving.process import settings_environ

from bench.common import CONFIG, END
from bench.online import openload_binary
from fsml.redis_server import RedisServer, free_port
from fsml.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().split()
    return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")


def _start(fsml: str, env: dict[str, str], stamp: str) -> tuple[subprocess.Popen, str]:
    """A server that scores (a model loaded); readiness markers of newer builds are not needed."""
    port = free_port()
    process = subprocess.Popen([fsml, "serve", "--port", str(port)], env=env, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    body = {"customer_id": 1, "merchant_id": 1, "amount": 5.0, "timestamp": stamp}
    for _ in range(600):
        try:
            if httpx.post(url + "/v1/predict", json=body, timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{fsml} serve did not become ready")


def main(a: str, b: str, rounds: int = typer.Option(10, help="Measurements per build."), seconds: int = 4) -> None:
    home = Path(os.environ.get("FSML_BENCH_HOME", ROOT / ".fsml" / "bench")).resolve()
    redis = RedisServer(home / "redis", persist=True).start()
    settings = Settings(home=home, redis_url=redis.url, env="dev", reload_poll_seconds=0, access_log=False)
    env = settings_environ(settings)
    binary = openload_binary(home)
    stamp = f"{END.isoformat()}T00:00:00Z"
    servers = {"a": _start(a, env, stamp), "b": _start(b, env, stamp)}
    results: dict[str, list[dict[str, float]]] = {"a": [], "b": []}
    try:
        for i in range(rounds):
            for name in ("a", "b") if i % 2 == 0 else ("b", "a"):
                process, url = servers[name]
                host, port = url.removeprefix("http://").split(":")
                before = _cpu_seconds(process.pid)
                command = [str(binary), host, port, "1000", str(seconds), "32", str(CONFIG.customers),
                           str(CONFIG.merchants), "/v1/predict", stamp]  # fmt: skip
                out = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60).stdout
                line = next(x for x in out.splitlines() if x.startswith("OPENLOAD_JSON "))
                measured = json.loads(line.removeprefix("OPENLOAD_JSON "))
                used = _cpu_seconds(process.pid) - before
                results[name].append({**measured, "cpu_us_per_request": used / measured["completed"] * 1e6})
    finally:
        for process, _ in servers.values():
            process.terminate()
            process.wait(timeout=30)
        redis.stop()
    summary = {
        name: {key: statistics.median(r[key] for r in rows) for key in ("cpu_us_per_request", "p50_ms", "p99_ms")}
        for name, rows in results.items()
    }
    print(json.dumps({"a": a, "b": b, "rounds": rounds, "median": summary}, indent=2))


if __name__ == "__main__":
    typer.run(main)
