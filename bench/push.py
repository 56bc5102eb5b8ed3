"""Push throughput: raw transactions through ``POST /v1/push/transactions`` (batches of 500, as
an application sends them, durable in both stores before each answer) against stock Feast's
``FeatureStore.push(..., to=PushMode.ONLINE_AND_OFFLINE)`` of the same rows, in the same run.

Both start from the same offline data: the bench's history of transactions, in fsml's log and in
the stock push source's Parquet file. Stock Feast writes the rows of a push source as they are (no
aggregation) to Redis and appends them to that file by reading the whole file and writing it
again. fsml checks
every row, deduplicates by id, writes a new date-partitioned file (fsynced) and updates the
window views' events in Redis, whose append-only file is fsynced before Redis answers (the
server this bench starts runs with ``appendfsync always``; stock Feast writes to the same one).

Also: visibility, a push followed at once by a prediction for the same card, never sleeping;
the prediction must count the pushed event, every time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta
from pathlib import Path
from statistics import median
from typing import Any

import httpx
import numpy as np
import pandas as pd
from fsml.serving.process import ServerProcess
from pydantic import SecretStr

from bench.common import BenchWorld, live_world

log = logging.getLogger(__name__)
KEY = "bench-push-key"
BATCH = 500


def transactions(world: BenchWorld, rows: int, first_id: int, seed: int = 3) -> pd.DataFrame:
    """New transactions of known customers in the hour before the data's end."""
    rng = np.random.default_rng(seed)
    moments = world.end - pd.to_timedelta(rng.uniform(1, 3_600, rows), unit="s")
    return pd.DataFrame(
        {
            "transaction_id": np.arange(first_id, first_id + rows, dtype=np.int64),
            "customer_id": rng.integers(1, world.config.customers + 1, rows, dtype=np.int64),
            "merchant_id": rng.integers(1, world.config.merchants + 1, rows, dtype=np.int64),
            "amount": np.round(rng.lognormal(3.3, 0.8, rows), 2),
            "timestamp": pd.Series(moments).astype("datetime64[us, UTC]"),
        }
    )


def bodies(frame: pd.DataFrame) -> list[bytes]:
    """Request bodies of ``BATCH`` rows, encoded before any timing."""
    import orjson

    records = frame.assign(timestamp=frame["timestamp"].map(lambda t: t.isoformat())).to_dict("records")
    return [orjson.dumps({"rows": records[i : i + BATCH]}) for i in range(0, len(records), BATCH)]


async def _send_all(url: str, payloads: list[bytes], concurrency: int) -> float:
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for payload in payloads:
        queue.put_nowait(payload)
    headers = {"X-API-Key": KEY, "content-type": "application/json"}

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            reply = await client.post("/v1/push/transactions", content=queue.get_nowait())
            reply.raise_for_status()

    async with httpx.AsyncClient(base_url=url, timeout=60, headers=headers) as client:
        began = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        return time.perf_counter() - began


def fsml_push(url: str, frame: pd.DataFrame, concurrency: int) -> dict[str, float]:
    seconds = asyncio.run(_send_all(url, bodies(frame), concurrency))
    return {"rows": len(frame), "seconds": seconds, "rows_per_s": len(frame) / seconds, "concurrency": concurrency}


def stock_store(world: BenchWorld, home: Path, redis_url: str) -> Any:
    """Stock Feast: the same push source and raw columns, a view keyed by customer, Feast's own
    Redis store (the same server, another database) and DuckDB offline store."""
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource, PushSource, RepoConfig, ValueType
    from feast.types import Float64, Int64
    from redis.connection import parse_url

    root = home / "bench_push" / "stock"
    import shutil

    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    path = root / "transactions.parquet"
    history = pd.read_parquet(world.settings.raw_dir / "transactions.parquet")  # what fsml's log holds
    history[history["timestamp"] < world.end].astype(transactions(world, 0, 0).dtypes).to_parquet(path, index=False)
    url = parse_url(redis_url)
    config = RepoConfig(
        project="benchpush",
        provider="local",
        registry=str(root / "registry.db"),
        repo_path=str(root),
        online_store={"type": "redis", "connection_string": f"{url.get('host')}:{url.get('port')},db=6"},
        offline_store={"type": "duckdb"},
        entity_key_serialization_version=3,
    )
    customer = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.INT64)
    source = PushSource(
        name="transactions", batch_source=FileSource(name="log", path=str(path), timestamp_field="timestamp")
    )
    view = FeatureView(
        name="transaction_log",
        entities=[customer],
        source=source,
        schema=[Field(name="transaction_id", dtype=Int64), Field(name="merchant_id", dtype=Int64),
                Field(name="amount", dtype=Float64)],
    )  # fmt: skip
    store = FeatureStore(config=config)
    store.apply([customer, view])
    return store


def stock_push(store: Any, frame: pd.DataFrame) -> dict[str, float]:
    from feast.data_source import PushMode

    began = time.perf_counter()
    for start in range(0, len(frame), BATCH):
        store.push("transactions", frame.iloc[start : start + BATCH], to=PushMode.ONLINE_AND_OFFLINE)
    seconds = time.perf_counter() - began
    return {"rows": len(frame), "seconds": seconds, "rows_per_s": len(frame) / seconds}


def visibility(url: str, world: BenchWorld, tries: int = 100) -> dict[str, Any]:
    """Push one event for a new card, then predict for it at once: seen every time?"""
    seen, latencies = 0, []
    stamp = world.end.isoformat()
    with httpx.Client(base_url=url, timeout=10, headers={"X-API-Key": KEY}) as client:
        for i in range(tries):
            card = 50_000_000 + i
            row = {"transaction_id": 60_000_000_000 + i, "customer_id": card, "merchant_id": 1, "amount": 9.5,
                   "timestamp": (world.end - timedelta(seconds=1)).isoformat()}  # fmt: skip
            client.post("/v1/push/transactions", json={"rows": [row]}).raise_for_status()
            began = time.perf_counter()
            body = {"customer_id": card, "merchant_id": 1, "amount": 5.0, "timestamp": stamp}
            values = client.post("/v1/predict?include_values=true", json=body).json()["features"]["values"]
            latencies.append(time.perf_counter() - began)
            seen += values["customer_transaction_windows__txn_count_1h"] == 1
    return {"tries": tries, "seen_by_next_prediction": seen, "prediction_p50_ms": 1000 * median(latencies)}


def run(world: BenchWorld, rows: int = 20_000, repeats: int = 3, concurrency: int = 4) -> dict[str, Any]:
    settings = live_world(world, "push", db=7, push_api_key=SecretStr(KEY), reload_poll_seconds=0.0)
    results: dict[str, Any] = {"rows": rows, "batch": BATCH}
    fsml_runs, stock_runs = [], []
    with ServerProcess(settings, workers=2) as server:
        fsml_push(server.url, transactions(world, 1_000, 10**11), concurrency)  # warm-up
        for repeat in range(repeats):  # interleaved: a slow spell of the machine falls on both
            frame = transactions(world, rows, 10**11 + (repeat + 1) * 10**7, seed=repeat)
            fsml_runs.append(fsml_push(server.url, frame, concurrency))
            stock_runs.append(stock_push(stock_store(world, settings.home, settings.redis_url), frame))
            log.info("push: fsml %.0f rows/s, stock Feast %.0f rows/s", fsml_runs[-1]["rows_per_s"],
                     stock_runs[-1]["rows_per_s"])  # fmt: skip
        results["visibility"] = visibility(server.url, world)
    results["fsml"] = {"rows_per_s": median(r["rows_per_s"] for r in fsml_runs), "runs": fsml_runs}
    results["stock"] = {"rows_per_s": median(r["rows_per_s"] for r in stock_runs), "runs": stock_runs}
    results["summary"] = {
        "speedup_vs_stock": results["fsml"]["rows_per_s"] / results["stock"]["rows_per_s"],
        "visible_at_next_prediction": results["visibility"]["seen_by_next_prediction"]
        == results["visibility"]["tries"],
    }
    return results
