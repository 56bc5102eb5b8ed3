"""Every Parquet time type Feast reads, naive or zoned, through each path that reads times.

For each type the same small tables (feature rows with sub-second and sub-microsecond times,
labels, a file to score) are written with that type, behind relative paths, and go through: the
label rows of a training set, the point-in-time join (fsml's store against stock Feast's),
materialization (fsml's engine against Feast's own, the fallback for views it does not cover)
and the validation of a file to score. Naive times are UTC, as in Feast; times are compared at
microsecond precision (a Python datetime's).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fsml.featurestore import Input, LabelSource, ServiceSpec
from fsml.redis_server import RedisServer
from tests.conftest import feast_store

pytestmark = pytest.mark.integration

START = datetime(2026, 10, 1, tzinfo=UTC)
TYPES = {
    "TIMESTAMP": pa.timestamp("us"),
    "TIMESTAMPTZ": pa.timestamp("us", tz="UTC"),
    "TIMESTAMP_MS": pa.timestamp("ms"),
    "TIMESTAMPTZ_MS": pa.timestamp("ms", tz="UTC"),
    "TIMESTAMP_NS": pa.timestamp("ns"),
    "TIMESTAMPTZ_NS": pa.timestamp("ns", tz="UTC"),
    "TIMESTAMPTZ_NS_PARIS": pa.timestamp("ns", tz="Europe/Paris"),
}


def _times(nanos: np.ndarray, kind: pa.DataType) -> pa.Array:
    """UTC instants given in nanoseconds since START, as ``kind`` (cut to its unit)."""
    base = np.datetime64(START.replace(tzinfo=None), "ns")
    utc = pa.array(base + nanos.astype("timedelta64[ns]"), pa.timestamp("ns")).cast(pa.timestamp("ns", tz="UTC"))
    return utc.cast(pa.timestamp(kind.unit, tz=kind.tz or "UTC"), safe=False).cast(kind)


def _save(table: pa.Table, path: Path, partitioned: bool) -> None:
    """One Parquet file, or a directory of them (as Spark writes a table)."""
    if not partitioned:
        pq.write_table(table, path)
        return
    path.mkdir()
    half = table.num_rows // 2
    pq.write_table(table.slice(0, half), path / "part-0.parquet")
    pq.write_table(table.slice(half), path / "part-1.parquet")


def _write(data: Path, kind: pa.DataType, rng: np.random.Generator, partitioned: bool = False) -> None:
    data.mkdir(parents=True, exist_ok=True)
    n = 3_000
    # minutes apart, plus odd milliseconds and nanoseconds: every unit is exercised
    event = rng.integers(0, 3 * 24 * 60, n) * 60_000_000_000 + rng.integers(0, 10**9, n)
    features = {
        "user_id": pa.array(rng.integers(0, 200, n)),
        "ts": _times(event, kind),
        "created": _times(event + rng.integers(0, 10**6, n), kind),
        "x": pa.array(rng.normal(size=n)),
    }
    _save(pa.table(features), data / "stats.parquet", partitioned)
    # the same features with a type no fast path covers: materialized by Feast's own engine
    _save(pa.table({**features, "tags": pa.array([["a", "b"]] * n)}), data / "tagged.parquet", partitioned)
    m = 400
    when = rng.integers(2 * 60, 3 * 24 * 60, m) * 60_000_000_000 + rng.integers(0, 10**9, m)
    labels = {
        "row_id": pa.array(np.arange(m)),
        "user_id": pa.array(rng.integers(0, 220, m)),
        "at": _times(when, kind),
        "label": pa.array(rng.integers(0, 2, m)),
        "known_at": _times(when + 3_600_000_000_000, kind),
    }
    _save(pa.table(labels), data / "labels.parquet", partitioned)


def _objects() -> list:
    from feast import Entity, FeatureView, Field, FileSource, ValueType
    from feast.types import Array, Float64, String

    user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64)
    fast = FeatureView(
        name="stats",
        entities=[user],
        ttl=timedelta(hours=12),
        schema=[Field(name="x", dtype=Float64)],
        source=FileSource(
            name="stats_src", path="data/stats.parquet", timestamp_field="ts", created_timestamp_column="created"
        ),
    )
    slow = FeatureView(
        name="tagged",
        entities=[user],
        ttl=timedelta(hours=12),
        schema=[Field(name="x", dtype=Float64), Field(name="tags", dtype=Array(String))],
        source=FileSource(
            name="tagged_src", path="data/tagged.parquet", timestamp_field="ts", created_timestamp_column="created"
        ),
    )
    return [user, fast, slow]


def _spec(data: Path) -> ServiceSpec:
    source = LabelSource("labels", data / "labels.parquet", "at", "label", "known_at", "row_id")
    inputs = (Input("user_id", "int", "key"),)
    return ServiceSpec("s", (), ("user_id",), (), {}, source, {}, inputs, time_field="at")


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory):
    with RedisServer(tmp_path_factory.mktemp("redis_times")) as server:
        yield server.url


def _utc(column: pd.Series) -> pd.Series:
    """A time column as fsml and Feast read it: naive is UTC, cut to microseconds."""
    return pd.to_datetime(column, utc=True).dt.floor("us").astype("datetime64[us, UTC]")


def _expected(features: pd.DataFrame, entities: pd.DataFrame, ttl: timedelta) -> pd.Series:
    """Feast's point-in-time rule in pandas: the newest row at or before each entity row (the
    latest created among equal times), if not older than the TTL."""
    rows = features.assign(ts=_utc(features["ts"]), created=_utc(features["created"])).sort_values(["ts", "created"])
    joined = pd.merge_asof(
        entities.sort_values("event_timestamp"), rows, left_on="event_timestamp", right_on="ts", by="user_id"
    )
    joined.loc[joined["ts"] < joined["event_timestamp"] - ttl, "x"] = np.nan
    return joined.set_index("row_id")["x"]


def _latest(features: pd.DataFrame, end: datetime) -> dict[int, float]:
    rows = features.assign(ts=_utc(features["ts"]), created=_utc(features["created"]))
    rows = rows[rows["ts"] <= end].sort_values(["ts", "created"])
    return rows.groupby("user_id")["x"].last().to_dict()


@pytest.mark.parametrize("name", [*TYPES, "PARTITIONED"])
def test_every_time_type_reads_the_same(name: str, tmp_path: Path, redis_url: str) -> None:
    """PARTITIONED: zoned nanosecond times in directories of Parquet files instead of files."""
    import redis
    from fsml.serving.batch_rows import split_valid
    from fsml.training.dataset import label_rows

    redis.Redis.from_url(redis_url).flushdb()
    kind = TYPES.get(name, TYPES["TIMESTAMPTZ_NS"])
    _write(tmp_path / "data", kind, np.random.default_rng(3), partitioned=name == "PARTITIONED")
    store = feast_store(
        tmp_path / "repo",
        _objects(),
        offline_store={"type": "fsml.stores.duckdb.DuckDBOfflineStore"},
        batch_engine={"type": "fsml.stores.engine.FsmlComputeEngine"},
        online_store={"type": "fsml.stores.redis.RedisOnlineStore", "connection_string": redis_url},
        coerce_tz_aware=False,
    )
    (tmp_path / "repo" / "data").symlink_to(tmp_path / "data")  # sources say "data/...": the repo's

    # labels: the window and the availability cut-off are applied in UTC, whatever the type
    spec = _spec(tmp_path / "data")
    lo, hi = START + timedelta(days=1), START + timedelta(days=2, hours=12)
    rows = label_rows(spec, lo, hi, as_of=hi)
    raw = pq.read_table(spec.label_source.path).to_pandas()
    expected = raw[(_utc(raw["at"]) >= lo) & (_utc(raw["at"]) < hi) & (_utc(raw["known_at"]) <= hi)]
    assert sorted(rows["row_id"]) == sorted(expected["row_id"]) and len(rows) > 50
    assert str(rows["event_timestamp"].dtype) == "datetime64[us, UTC]"

    # point-in-time join through fsml's store: Feast's rule, at microsecond precision
    features = pq.read_table(tmp_path / "data" / "stats.parquet").to_pandas()
    entities = rows[["row_id", "user_id", "event_timestamp"]]
    joined = store.get_historical_features(entity_df=entities, features=["stats:x"]).to_df().set_index("row_id")
    want = _expected(features, entities, timedelta(hours=12))
    np.testing.assert_array_equal(joined.loc[want.index, "x"].to_numpy(), want.to_numpy())
    assert want.notna().sum() > 20 and want.isna().sum() > 0

    # materialization: fsml's engine ("stats") and Feast's own, its fallback for a list feature
    # ("tagged"), both store each user's newest row
    end = START + timedelta(days=2)
    store.materialize(START, end)
    latest = _latest(features, end)
    users = [{"user_id": i} for i in range(200)]
    for view in ("stats", "tagged"):
        online = store.get_online_features(features=[f"{view}:x"], entity_rows=users).to_dict()
        assert {u: x for u, x in zip(online["user_id"], online["x"], strict=True) if x is not None} == latest, view

    # batch scoring: the file's time column, of this type, is read as UTC
    good, rejected = split_valid(pq.read_table(spec.label_source.path), spec.inputs, "at")
    assert rejected.num_rows == 0 and good.schema.field("at").type == pa.timestamp("us", tz="UTC")
    np.testing.assert_array_equal(good["at"].to_pandas().to_numpy(), _utc(raw["at"]).to_numpy())
