"""``/v1/predict`` while pushes flow: the latency at a fixed 1,000 requests/s with 1,000 pushed
events/s (two batches of 500 a second) against the do-nothing HTTP server in the same harness,
and the saturated request rate with and without the pushes.

The pushed transactions are of the bench's customers, timed just before the requests' time, so
every prediction aggregates them in its window features: the pushes change what is read, not
only what is written.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
from fsml.serving.process import ServerProcess
from pydantic import SecretStr

from bench.common import BenchWorld, live_world
from bench.loadgen import wrk
from bench.online import HelloServer, _summarise, openload, openload_binary
from bench.push import KEY, bodies, transactions

log = logging.getLogger(__name__)
EVENTS_PER_S = 1_000


class Pusher:
    """Sends pre-encoded 500-row bodies at a fixed rate from a thread, until stopped."""

    def __init__(self, url: str, world: BenchWorld, seconds: float, first_id: int) -> None:
        rows = int(EVENTS_PER_S * (seconds + 5))
        self.payloads = bodies(transactions(world, rows, first_id, seed=first_id % 1000))
        self.url = url
        self.stop = threading.Event()
        self.sent = self.failed = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        interval = 500 / EVENTS_PER_S
        headers = {"X-API-Key": KEY, "content-type": "application/json"}
        with httpx.Client(base_url=self.url, timeout=30, headers=headers) as client:
            began = time.monotonic()
            for index, payload in enumerate(self.payloads):
                if self.stop.is_set():
                    return
                delay = began + index * interval - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                reply = client.post("/v1/push/transactions", content=payload)
                if reply.status_code == 200:
                    self.sent += 500
                else:
                    self.failed += 1

    def __enter__(self) -> Pusher:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=30)


def run(world: BenchWorld, seconds: float = 5.0, repeats: int = 5, workers: int = 2) -> dict[str, Any]:
    settings = live_world(world, "live", db=8, push_api_key=SecretStr(KEY), reload_poll_seconds=0.0)
    binary = openload_binary(world.settings.home)
    stamp = world.end.isoformat().replace("+00:00", "Z")
    results: dict[str, Any] = {"events_per_s": EVENTS_PER_S, "workers": workers}
    first_id = [10**12]

    def measure(name: str, once: Callable[[float], dict[str, Any]], server: str | None = None) -> None:
        runs = []
        for _ in range(repeats + 1):  # the first is a warm-up
            if server is None:
                runs.append(once(seconds))
                continue
            first_id[0] += 10**8
            with Pusher(server, world, seconds, first_id[0]) as pusher:
                measured = once(seconds)
            runs.append({**measured, "pushed_rows": pusher.sent, "push_failures": pusher.failed})
        results[name] = _summarise(runs[1:])
        log.info("%s: %.0f req/s, p50 %.2f ms, p99 %.2f ms", name, results[name]["rps"], results[name]["p50_ms"],
                 results[name]["p99_ms"])  # fmt: skip

    def fixed(url: str) -> Callable[[float], dict[str, Any]]:
        return lambda s: openload(binary, url, 1000, s, world, stamp)

    def saturated(url: str) -> Callable[[float], dict[str, Any]]:
        return lambda s: wrk(url, "predict", 32, s, world.config.customers, world.config.merchants, "[]", stamp)

    with ServerProcess(settings, workers=workers) as server:
        measure("predict_1000rps_pushing", fixed(server.url), server.url)
        measure("predict_1000rps_alone", fixed(server.url))
        measure("predict_c32_pushing", saturated(server.url), server.url)
        measure("predict_c32_alone", saturated(server.url))
    with HelloServer() as hello:
        measure("hello_1000rps", fixed(hello.url))
    pushing, alone = results["predict_1000rps_pushing"], results["predict_1000rps_alone"]
    results["summary"] = {
        "p99_ms_pushing": pushing["p99_ms"],
        "p99_ms_alone": alone["p99_ms"],
        "hello_p99_ms": results["hello_1000rps"]["p99_ms"],
        "p99_ratio_to_hello": pushing["p99_ms"] / results["hello_1000rps"]["p99_ms"],
        "saturated_ratio": results["predict_c32_pushing"]["rps"] / results["predict_c32_alone"]["rps"],
    }
    return results
