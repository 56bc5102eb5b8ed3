"""A synthetic Feast repo for the offline and materialization benchmarks, and the two ways to
open it: stock Feast (DuckDB offline store, local engine) or fsml's extension classes.

One entity (``customer_id``, int64) and one feature view of 10 float32 features, 100,000
entities by 10 days = 1,000,000 feature rows: the setup of the reference figures in
``../shared/ANCHORS.md``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import fsml  # noqa: F401  (typeguard switch before Feast)

ENTITIES, DAYS, FEATURES = 100_000, 10, 10
START = datetime(2026, 10, 1, tzinfo=UTC)
REFS = [f"customer_stats:f{i}" for i in range(FEATURES)]
KINDS = {
    "stock": {"offline_store": {"type": "duckdb"}, "batch_engine": {"type": "local"}, "online_store": "redis"},
    "fsml": {
        "offline_store": {"type": "fsml.stores.duckdb.DuckDBOfflineStore"},
        "batch_engine": {"type": "fsml.stores.engine.FsmlComputeEngine"},
        "online_store": "fsml.stores.redis.RedisOnlineStore",
        "coerce_tz_aware": False,  # as in feature_repo/feature_store.yaml: the store does it, without a copy
    },
}


def table_path(home: Path) -> Path:
    return home / "bench_repo" / "customer_stats.parquet"


def build_table(home: Path) -> Path:
    path = table_path(home)
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    ids = np.tile(np.arange(1, ENTITIES + 1, dtype=np.int64), DAYS)
    days = np.repeat(np.arange(DAYS), ENTITIES)
    moments = pd.Series(
        START + pd.to_timedelta(days, unit="D") + pd.to_timedelta(rng.integers(0, 86_400, len(ids)), unit="s")
    )
    frame = pd.DataFrame({"customer_id": ids, "event_timestamp": moments.astype("datetime64[us, UTC]")})
    frame["created"] = frame["event_timestamp"]
    for i in range(FEATURES):
        frame[f"f{i}"] = rng.normal(size=len(ids)).astype(np.float32)
    frame.to_parquet(path, index=False)
    return path


def objects(home: Path) -> list[Any]:
    from feast import Entity, FeatureView, Field, FileSource, ValueType
    from feast.types import Float32

    customer = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.INT64)
    view = FeatureView(
        name="customer_stats",
        entities=[customer],
        ttl=timedelta(days=2),
        schema=[Field(name=f"f{i}", dtype=Float32) for i in range(FEATURES)],
        source=FileSource(
            name="customer_stats_src",
            path=str(table_path(home)),
            timestamp_field="event_timestamp",
            created_timestamp_column="created",
        ),
    )
    return [customer, view]


def store(home: Path, kind: str, redis_url: str) -> Any:
    """A FeatureStore on the bench repo, registered under its own directory per kind.

    Both kinds use the same project, so they write the same Redis keys (into different
    databases of one server, given by ``redis_url``); stock Feast uses its own Redis store,
    which takes ``host:port,db=N``.
    """
    from feast import FeatureStore, RepoConfig
    from redis.connection import parse_url

    root = home / "bench_repo" / kind
    root.mkdir(parents=True, exist_ok=True)
    settings = dict(KINDS[kind])
    online = settings.pop("online_store")
    if online == "redis":
        url = parse_url(redis_url)
        redis_url = f"{url.get('host', 'localhost')}:{url.get('port', 6379)},db={url.get('db', 0)}"
    config = RepoConfig(
        project="bench",
        provider="local",
        registry=str(root / "registry.db"),
        repo_path=str(root),
        online_store={"type": online, "connection_string": redis_url},
        entity_key_serialization_version=3,
        **settings,
    )
    feature_store = FeatureStore(config=config)
    feature_store.apply(objects(home))
    return feature_store


def entity_frame(rows: int, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    moments = START + pd.to_timedelta(rng.integers(0, (DAYS + 1) * 86_400, rows), unit="s")
    return pd.DataFrame(
        {
            "customer_id": rng.integers(1, ENTITIES + 1, rows, dtype=np.int64),
            "event_timestamp": pd.Series(moments).astype("datetime64[us, UTC]"),
            "row": np.arange(rows, dtype=np.int64),
        }
    )
