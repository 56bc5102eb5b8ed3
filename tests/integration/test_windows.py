"""Window features: the online engine (events in Redis, aggregated at request time) against the
offline change-point rows (DuckDB build, point-in-time join), on random pushed events.

Events arrive in batches by arrival time; some arrive late (up to 12 h after they happened),
some twice, some in bursts of many within minutes, and some customers stay quiet for more than
7 days (windows empty) or more than 15 (windows expired). After each batch, online values are
read at instants no later event can change (12 h behind the newest arrival) and compared with
the offline point-in-time values once everything is built: they must agree to float rounding,
including at the microsecond an event leaves a window and the one before.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import redis
from fsml.examples.fraud.synthetic import GeneratorConfig, generate, save
from fsml.features.build import build_features
from fsml.features.sources import load_repo
from fsml.features.window_store import WindowKeys
from fsml.serving.push import ingestor
from fsml.serving.redis_cluster import online_client

from fsml.featurestore import apply_repo, open_store
from fsml.redis_server import RedisServer
from fsml.stores.redis import sync_client
from tests.conftest import make_settings

pytestmark = pytest.mark.integration

HOUR_US = 3_600_000_000
DAY_US = 24 * HOUR_US
START = datetime(2026, 9, 1, tzinfo=UTC)
START_US = int(START.timestamp()) * 1_000_000
VIEW = "customer_transaction_windows"


def random_events(rng: np.random.Generator, customers: int = 60, days: int = 60) -> pd.DataFrame:
    """Transactions with bursts, quiet spells and late arrivals; arrival times included."""
    frames = []
    for customer in range(1, customers + 1):
        rate = rng.uniform(1, 6)
        times = np.sort(rng.uniform(0, days * DAY_US, rng.poisson(rate * days))).astype(np.int64)
        if customer % 5 == 0:  # a quiet spell: 9 days (windows empty) or 17 days (expired)
            gap_start, gap = rng.uniform(10, 30) * DAY_US, (9 if customer % 10 else 17) * DAY_US
            times = times[(times < gap_start) | (times > gap_start + gap)]
        if customer % 3 == 0:  # a burst: dozens within minutes
            at = rng.uniform(0, days * DAY_US)
            times = np.sort(np.concatenate([times, at + rng.uniform(0, 600e6, rng.integers(20, 60))])).astype(np.int64)
        frames.append(pd.DataFrame({"customer_id": customer, "t": times}))
    events = pd.concat(frames, ignore_index=True)
    n = len(events)
    events["merchant_id"] = rng.integers(1, 30, n)
    events["amount"] = np.round(rng.lognormal(3, 1, n), 2)
    late = rng.random(n) < 0.1
    events["arrival"] = events["t"] + np.where(late, rng.uniform(0, 12 * HOUR_US, n), 0).astype(np.int64)
    events = events.sort_values(["arrival", "t"], kind="mergesort").reset_index(drop=True)
    events["transaction_id"] = np.arange(1, n + 1)
    return events


def _row(e: pd.Series) -> dict:
    moment = START + timedelta(microseconds=int(e["t"]))
    return {"transaction_id": int(e["transaction_id"]), "customer_id": int(e["customer_id"]),
            "merchant_id": int(e["merchant_id"]), "amount": float(e["amount"]),
            "timestamp": moment.isoformat()}  # fmt: skip


def _instants(rng: np.random.Generator, events: pd.DataFrame, low: int, high: int, n: int) -> list[tuple[int, int]]:
    """(customer, t) in [low, high]: random ones, and the edges where an event leaves a window."""
    out = [(int(c), int(t)) for c, t in zip(rng.integers(1, 61, n), rng.integers(low, high + 1, n), strict=True)]
    near = events[(events["t"] >= low - 7 * DAY_US) & (events["t"] <= high)]
    for _, e in near.sample(min(len(near), n), random_state=int(rng.integers(1 << 30))).iterrows():
        w = int(rng.choice([HOUR_US, DAY_US, 7 * DAY_US]))
        for t in (e["t"] + w, e["t"] + w + 1, e["t"] + 1, e["t"]):
            if low <= t <= high:
                out.append((int(e["customer_id"]), int(t)))
    return out


@contextlib.contextmanager
def _online(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A URL of one Redis, or of the session's 3-master Redis Cluster (emptied first)."""
    if kind == "redis":
        with RedisServer(tmp_path / "redis", persist=True) as server:
            yield server.url
        return
    cluster = request.getfixturevalue("redis_cluster")
    for node in cluster.nodes:
        if node.running and redis.Redis(port=node.port).info("replication")["role"] == "master":
            redis.Redis(port=node.port).flushall()
    yield cluster.url


@pytest.mark.parametrize("kind", ["redis", pytest.param("redis_cluster", marks=pytest.mark.redis_cluster)])
def test_online_windows_equal_offline_point_in_time_values(
    tmp_path: Path, kind: str, request: pytest.FixtureRequest
) -> None:
    """On one Redis and on a Redis Cluster (where a push claims and adds events apart)."""
    rng = np.random.default_rng(2024)
    with _online(kind, tmp_path, request) as url:
        settings = make_settings(tmp_path / "home", url, redis_type=kind)
        config = GeneratorConfig(customers=60, merchants=30, days=60, end_date=date(2026, 10, 31), seed=3)
        save(generate(config), config, settings.raw_dir)  # reference tables for the snapshot views
        apply_repo(settings)
        store = open_store(settings)
        view = load_repo(store).window(VIEW)
        events = random_events(rng)
        assert len(events) >= 10_000
        client = sync_client(url, kind)
        keys = WindowKeys(store.project, view.name)
        online: list[tuple[int, int, dict | None]] = []

        async def stream() -> None:
            redis_client = online_client(settings, timeout_ms=30_000)
            ingest = ingestor(settings, redis_client, store)
            now = START + timedelta(days=200)
            batches = np.arange(0, events["arrival"].max() + 6 * HOUR_US, 6 * HOUR_US)
            pushed_until = -1
            for edge in batches[1:]:
                batch = events[(events["arrival"] > pushed_until) & (events["arrival"] <= edge)]
                rows = [_row(e) for _, e in batch.iterrows()]
                if rows and rng.random() < 0.3:  # some rows come again: duplicates
                    rows += rows[: max(1, len(rows) // 10)]
                if rows:
                    result = await ingest.push("transactions", rows, now=now)
                    assert result.accepted == len(batch)
                pushed_until = edge
                low, high = int(edge - 24 * HOUR_US + 1), int(edge - 12 * HOUR_US)
                if high <= 0:
                    continue
                for customer, t in _instants(rng, events, max(low, 0), high, 4):
                    entity = view.entity({"customer_id": customer})
                    at = START_US + t
                    stored, watermark = keys.keys(entity)
                    members = client.zrevrangebyscore(stored, f"({at}", "-inf")
                    mark = client.get(watermark)
                    values, status = view.evaluate(view.unpack(members), at, int(mark) if mark else None)
                    assert status != "incomplete", (customer, t)
                    online.append((customer, t, values))
            await redis_client.aclose()

        asyncio.run(stream())
        assert len(online) >= 1_000
        build_features(settings, until=START + timedelta(days=62))
        moments = [START + timedelta(microseconds=t) for _, t, _ in online]
        entities = pd.DataFrame({"customer_id": [c for c, _, _ in online], "event_timestamp": moments})
        entities["event_timestamp"] = entities["event_timestamp"].astype("datetime64[us, UTC]")
        entities["i"] = np.arange(len(entities))
        refs = [f"{VIEW}:{a.name}" for a in view.aggregates]
        offline = store.get_historical_features(entity_df=entities, features=refs).to_df().sort_values("i")
        checked = {"values": 0, "empty": 0}
        for (customer, t, values), (_, row) in zip(online, offline.iterrows(), strict=True):
            for agg in view.aggregates:
                want = row[agg.name]
                got = None if values is None else values[agg.name]
                if pd.isna(want):
                    assert got is None, (customer, t, agg.name, got)
                else:
                    assert got is not None and got == pytest.approx(float(want), rel=1e-9, abs=1e-9), (
                        customer, t, agg.name, got, want)  # fmt: skip
            checked["values" if values is not None else "empty"] += 1
        assert checked["values"] > 800 and checked["empty"] > 10  # expired windows were met too
