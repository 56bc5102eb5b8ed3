"""Materialization into Redis: fsml's compute engine against stock ``feast materialize`` (local
engine, Feast's Redis store) on the bench repo, with raw redis-py pipelined ``HSET``s of the
same hashes as the floor.

The 10 days of the repo (1,000,000 offline rows, 100,000 entities) are materialized into an
empty Redis database each run; rows/s counts the entity rows written. Stock Feast and fsml
write into different databases of one server; afterwards the two databases must hold exactly
the same keys and values, and stock ``get_online_features`` must read the same features from
both.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from pathlib import Path
from statistics import median
from typing import Any

import numpy as np
import redis

from bench.repo import DAYS, ENTITIES, REFS, START, build_table, store

DATABASES = {"stock": 1, "fsml": 2, "raw": 3}
WINDOW = (START - timedelta(days=1), START + timedelta(days=DAYS + 1))

log = logging.getLogger(__name__)


def _url(base: str, db: int) -> str:
    return f"{base.rsplit('/', 1)[0]}/{db}"


def _timed_materialize(feature_store: Any, client: redis.Redis) -> float:
    client.flushdb()
    began = time.perf_counter()
    feature_store.materialize(start_date=WINDOW[0], end_date=WINDOW[1])
    return time.perf_counter() - began


def _hashes(client: redis.Redis) -> dict[bytes, dict[bytes, bytes]]:
    """Feast's keys and hashes; fsml's readiness markers (``fsml.stores.redis``) are left out."""
    keys = [k for k in client.scan_iter(count=10_000) if not k.startswith(b"fsml:online:")]
    with client.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.hgetall(key)
        return dict(zip(keys, pipe.execute(), strict=True))


def _raw_floor(contents: dict[bytes, dict[bytes, bytes]], client: redis.Redis, batch: int = 10_000) -> float:
    """redis-py pipelined HSETs of already encoded hashes: what writing them costs from Python."""
    client.flushdb()
    items = list(contents.items())
    began = time.perf_counter()
    for start in range(0, len(items), batch):
        with client.pipeline(transaction=False) as pipe:
            for key, mapping in items[start : start + batch]:
                pipe.hset(key, mapping=mapping)
            pipe.execute()
    return time.perf_counter() - began


def _online_reads_agree(home: Path, base_url: str, sample: int = 2_000) -> bool:
    """Stock Feast's get_online_features returns the same features from both databases."""
    rng = np.random.default_rng(7)
    rows = [{"customer_id": int(i)} for i in rng.integers(1, ENTITIES + 1, sample)]
    answers = []
    for kind in ("stock", "fsml"):
        reader = store(home, "stock", _url(base_url, DATABASES[kind]))
        answers.append(reader.get_online_features(features=REFS, entity_rows=rows).to_dict())
    return answers[0] == answers[1]


def run(home: Path, redis_url: str, repeats: int = 5) -> dict[str, Any]:
    build_table(home)
    results: dict[str, Any] = {}
    clients = {kind: redis.Redis.from_url(_url(redis_url, db)) for kind, db in DATABASES.items()}
    stores = {kind: store(home, kind, _url(redis_url, DATABASES[kind])) for kind in ("fsml", "stock")}
    runs: dict[str, list[float]] = {kind: [] for kind in stores}
    for repeat in range(repeats):  # interleaved, so that a slow spell of the machine falls on both
        for kind in ("fsml", "stock") if repeat % 2 == 0 else ("stock", "fsml"):
            runs[kind].append(_timed_materialize(stores[kind], clients[kind]))
    for kind, times in runs.items():
        keys = clients[kind].dbsize() - clients[kind].exists(b"fsml:online:bench")  # not the marker
        results[kind] = {"seconds": median(times), "runs": times, "keys": keys, "rows_per_s": keys / median(times)}
        log.info(f"materialization, {kind}: {keys / median(times):,.0f} entity rows/s ({median(times):.2f} s)")
    written = {kind: _hashes(clients[kind]) for kind in ("stock", "fsml")}
    times = [_raw_floor(written["stock"], clients["raw"]) for _ in range(repeats)]
    keys = len(written["stock"])
    results["raw"] = {"seconds": median(times), "runs": times, "keys": keys, "rows_per_s": keys / median(times)}
    log.info(f"materialization, raw pipelined HSET: {keys / median(times):,.0f} keys/s")
    results["summary"] = {
        "speedup_vs_stock": results["stock"]["seconds"] / results["fsml"]["seconds"],
        "ratio_to_raw_floor": results["fsml"]["seconds"] / results["raw"]["seconds"],
        "identical_redis_contents": written["stock"] == written["fsml"],
        "keys": keys,
        "stock_reads_agree": _online_reads_agree(home, redis_url),
    }
    return results
