"""Differential test: fsml's materialization engine writes exactly what stock Feast writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import redis

from fsml.redis_server import RedisServer
from fsml.stores.redis import marker_key, read_marks
from tests.conftest import feast_store

pytestmark = pytest.mark.integration

START = datetime(2026, 10, 1, tzinfo=UTC)


def _tables(data: Path, rng: np.random.Generator) -> None:
    n = 5_000
    ts = pd.Series(START + pd.to_timedelta(rng.integers(0, 3 * 24 * 60, n), unit="min")).astype("datetime64[us, UTC]")
    stats = pd.DataFrame(
        {
            "user_id": rng.integers(-5, 400, n),
            "ts": ts,
            "created": ts + pd.to_timedelta(rng.integers(0, 3, n), unit="min"),
            "a": rng.normal(size=n),
            "b": rng.integers(-(2**40), 2**40, n),
            "c": rng.choice(["x", "é", "", None], n),
            "d": rng.normal(size=n).astype(np.float32),
            "flag": rng.choice([True, False], n),
            "small": rng.integers(-100, 100, n).astype(np.int32),
        }
    )
    stats.loc[rng.random(n) < 0.1, "a"] = np.nan
    stats = stats.drop_duplicates(["user_id", "ts", "created"])
    stats.to_parquet(data / "stats.parquet")
    pairs = pd.DataFrame(
        {
            "user_id": rng.integers(0, 50, n),
            "shop": [f"s{i}" for i in rng.integers(0, 5, n)],
            "ts": ts,
            "e": rng.normal(size=n),
        }
    ).drop_duplicates(["user_id", "shop", "ts"])
    pairs.to_parquet(data / "pairs.parquet")


def _objects(data: Path) -> list:
    from feast import Entity, FeatureView, Field, FileSource, ValueType
    from feast.types import Bool, Float32, Float64, Int32, Int64, String

    user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64)
    shop = Entity(name="shop", join_keys=["shop"], value_type=ValueType.STRING)
    stats = FeatureView(
        name="stats",
        entities=[user],
        ttl=timedelta(days=2),
        schema=[
            Field(name="a", dtype=Float64),
            Field(name="b", dtype=Int64),
            Field(name="c", dtype=String),
            Field(name="d", dtype=Float32),
            Field(name="flag", dtype=Bool),
            Field(name="small", dtype=Int32),
        ],
        source=FileSource(
            name="stats_src", path=str(data / "stats.parquet"), timestamp_field="ts", created_timestamp_column="created"
        ),
    )
    pairs = FeatureView(
        name="pairs",
        entities=[user, shop],
        ttl=timedelta(days=1),
        schema=[Field(name="e", dtype=Float64)],
        source=FileSource(name="pairs_src", path=str(data / "pairs.parquet"), timestamp_field="ts"),
    )
    return [user, shop, stats, pairs]


def _store(home: Path, url: str, engine: str, objects: list, key_ttl: int | None = None):
    online = {"type": "fsml.stores.redis.RedisOnlineStore", "connection_string": url, "key_ttl_seconds": key_ttl}
    return feast_store(
        home, objects, offline_store={"type": "duckdb"}, batch_engine={"type": engine}, online_store=online
    )


def _dump(url: str) -> dict:
    """Every Feast key and its hash; fsml's readiness markers (fsml.stores.redis) are left out."""
    client = redis.Redis.from_url(url)
    return {key: client.hgetall(key) for key in client.scan_iter(count=1000) if key != marker_key("diff")}


@pytest.mark.parametrize(("batch_rows", "key_ttl"), [(20_000, None), (301, 3600)])
def test_fast_engine_writes_what_stock_feast_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, batch_rows: int, key_ttl: int | None
) -> None:
    """One batch, and many small ones (replies of one batch's writes read before the next
    batch's reads) with key expiry."""
    from fsml.stores import engine as fast_engine

    monkeypatch.setattr(fast_engine, "BATCH_ROWS", batch_rows)
    rng = np.random.default_rng(5)
    data = tmp_path / "data"
    data.mkdir()
    _tables(data, rng)
    objects = _objects(data)
    server = RedisServer(tmp_path / "redis").start()
    try:
        stores = {}
        for db, engine in ((1, "local"), (2, "fsml.stores.engine.FsmlComputeEngine")):
            url = f"{server.url[:-1]}{db}"
            store = _store(tmp_path / str(db), url, engine, objects, key_ttl)
            # a middle range first, then an earlier one (older rows must not overwrite), then the rest
            for lo, hi in ((1, 2), (0, 1.5), (0, 3)):
                store.materialize(START + timedelta(days=lo), START + timedelta(days=hi))
            stores[db] = (store, url)
        stock, fast = _dump(stores[1][1]), _dump(stores[2][1])
        assert len(stock) > 400 and fast == stock
        for _, url in stores.values():
            client = redis.Redis.from_url(url)
            assert set(read_marks(client, "diff")) == {"stats", "pairs"}  # both engines mark their views
            ttls = {client.ttl(key) for key in client.scan_iter(count=1000) if key != marker_key("diff")}
            assert ttls == {-1} if key_ttl is None else all(0 < t <= key_ttl for t in ttls)
        rows = [{"user_id": u, "shop": "s1"} for u in range(-5, 60)]
        features = ["stats:a", "stats:b", "stats:c", "stats:d", "stats:flag", "stats:small", "pairs:e"]
        online = [s.get_online_features(features=features, entity_rows=rows).to_dict() for s, _ in stores.values()]
        assert online[0] == online[1]
    finally:
        server.stop()


def test_a_redis_error_fails_the_materialization(tmp_path: Path) -> None:
    """An error reply in the middle of a bulk write is raised, not dropped."""
    rng = np.random.default_rng(6)
    data = tmp_path / "data"
    data.mkdir()
    _tables(data, rng)
    server = RedisServer(tmp_path / "redis").start()
    try:
        store = _store(tmp_path / "fast", server.url, "fsml.stores.engine.FsmlComputeEngine", _objects(data))
        store.materialize(START, START + timedelta(days=1))
        client = redis.Redis.from_url(server.url)
        victim = next(k for k in client.scan_iter(count=1000) if k != marker_key("diff"))
        client.delete(victim)
        client.set(victim, b"not a hash")
        with pytest.raises(Exception, match="WRONGTYPE"):
            store.materialize(START, START + timedelta(days=3))
    finally:
        server.stop()
