"""Shadow scoring's cost on the champion's answers: ``/v1/predict`` at a fixed 1,000 requests/s
(open loop, ``bench/openload.c``) with ``FSML_SHADOW_FRACTION=1`` (the challenger scores every
request, off the hot path, and its log gets both scores) against ``FSML_SHADOW_FRACTION=0``, on
the same data, champion and Redis. Runs are interleaved (off, on, off, on, ...) so that the
machine's drift over the run falls on both alike. Target: p99 with shadow within 10 % of without.
"""

from __future__ import annotations

import logging
from statistics import median
from typing import Any

import httpx
from fsml.serving.process import ServerProcess

from bench.common import BenchWorld
from bench.online import openload, openload_binary

log = logging.getLogger(__name__)
RATE = 1_000


def challenger(world: BenchWorld) -> str:
    """A challenger beside the bench's champion: a model of the same service with other
    parameters, registered (alias ``challenger``) and not promoted."""
    from fsml.training.pipeline import train

    from fsml import registry

    current = registry.version_by_alias(
        registry.client(world.settings), world.settings.model_name(world.settings.feature_service), registry.CHALLENGER
    )
    if current is not None:
        return str(current.version)
    settings = world.settings.model_copy(update={"num_leaves": 15, "learning_rate": 0.08})
    return train(settings, as_of=world.end, reason="bench: shadow challenger").registered.version


def run(world: BenchWorld, seconds: float = 5.0, repeats: int = 5, workers: int = 2) -> dict[str, Any]:
    version = challenger(world)
    binary = openload_binary(world.settings.home)
    stamp = world.end.isoformat().replace("+00:00", "Z")
    settings = world.settings.model_copy(update={"reload_poll_seconds": 0.0})
    runs: dict[str, list[dict[str, Any]]] = {"off": [], "on": []}
    servers = {
        mode: ServerProcess(settings, workers=workers, extra_env={"FSML_SHADOW_FRACTION": fraction})
        for mode, fraction in (("off", "0"), ("on", "1"))
    }
    try:
        for server in servers.values():
            server.start()
            openload(binary, server.url, RATE, 2, world, stamp)  # warm-up
        for _ in range(repeats):
            for mode, server in servers.items():
                runs[mode].append(openload(binary, server.url, RATE, seconds, world, stamp))
        shadowed = _shadow_rows(servers["on"].url)
    finally:
        for server in servers.values():
            server.stop()
    out: dict[str, Any] = {"challenger_version": version, "offered_rps": RATE, "workers": workers}
    for mode, measured in runs.items():
        out[mode] = {
            "p50_ms": median(r["p50_ms"] for r in measured),
            "p99_ms": median(r["p99_ms"] for r in measured),
            "rps": median(r["rps"] for r in measured),
            "errors": sum(r["errors"] for r in measured),
            "runs": measured,
        }
    out["p99_ratio"] = out["on"]["p99_ms"] / out["off"]["p99_ms"]
    out["shadow_scored"] = shadowed
    log.info(
        "shadow: p99 %.2f ms on, %.2f ms off (x%.3f); %s rows shadow-scored",
        out["on"]["p99_ms"],
        out["off"]["p99_ms"],
        out["p99_ratio"],
        shadowed,
    )
    return out


def _shadow_rows(url: str) -> float:
    """Rows the challenger scored in shadow, from the service's Prometheus metrics."""
    text = httpx.get(url + "/metrics", timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("fsml_challenger_rows_total") and 'route="shadow"' in line
    )
