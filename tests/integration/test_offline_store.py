"""Differential test: fsml's ASOF-join offline store against stock Feast on random data.

Random repos with several feature views, TTLs and none, created-timestamp ties, composite and
string join keys, entity rows with no feature row and rows exactly on boundaries: both stores
must return the same values.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import feast_store

pytestmark = pytest.mark.integration


def _objects(data: Path, ttl_hours: int) -> list:
    """Entities and views exercising TTLs (and none), created-timestamp ties, composite and
    string keys."""
    from feast import Entity, FeatureView, Field, FileSource, ValueType
    from feast.types import Float64, Int64, String

    user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64)
    item = Entity(name="item", join_keys=["item_id"], value_type=ValueType.STRING)
    shop = Entity(name="shop", join_keys=["shop_id"], value_type=ValueType.INT64)

    def source(name: str, created: bool = True) -> FileSource:
        return FileSource(
            name=f"{name}_src",
            path=str(data / f"{name}.parquet"),
            timestamp_field="ts",
            created_timestamp_column="created" if created else None,
        )

    views = [
        FeatureView(
            name="user_stats",
            entities=[user],
            ttl=timedelta(hours=ttl_hours),
            schema=[Field(name="a", dtype=Float64), Field(name="b", dtype=Int64)],
            source=source("user_stats"),
        ),
        FeatureView(
            name="user_forever",
            entities=[user],
            ttl=timedelta(0),
            schema=[Field(name="c", dtype=Float64)],
            source=source("user_forever", created=False),
        ),
        FeatureView(
            name="item_stats",
            entities=[item],
            ttl=timedelta(days=2),
            schema=[Field(name="d", dtype=String), Field(name="e", dtype=Float64)],
            source=source("item_stats"),
        ),
        FeatureView(
            name="pair_stats",
            entities=[user, shop],
            ttl=timedelta(hours=20),
            schema=[Field(name="f", dtype=Float64)],
            source=source("pair_stats"),
        ),
    ]
    return [user, item, shop, *views]


REFS = ["user_stats:a", "user_stats:b", "user_forever:c", "item_stats:d", "item_stats:e", "pair_stats:f"]


def _store(home: Path, offline: str, objects: list):
    return feast_store(
        home,
        objects,
        offline_store={"type": offline},
        online_store={"type": "sqlite", "path": str(home / "online.db")},
        coerce_tz_aware=offline == "duckdb",  # fsml's store does Feast's coercion itself (no copy)
    )


def _times(rng: np.random.Generator, n: int, minutes: int) -> pd.Series:
    base = pd.Timestamp("2026-10-01", tz="UTC")
    return pd.Series(base + pd.to_timedelta(rng.integers(0, minutes, n), unit="min")).astype("datetime64[us, UTC]")


def _feature_tables(rng: np.random.Generator, data: Path, users: int, minutes: int) -> None:
    n = 4_000
    ts = _times(rng, n, minutes)
    created = ts + pd.to_timedelta(rng.integers(0, 3, n), unit="min")
    stats = pd.DataFrame(
        {
            "user_id": rng.integers(0, users, n),
            "ts": ts,
            "created": created,
            "a": rng.normal(size=n),
            "b": rng.integers(-5, 5, n),
        }
    )
    stats.loc[rng.random(n) < 0.05, "a"] = np.nan
    # Rows equal in key, event time and created time have no defined winner in Feast: none here.
    stats = stats.drop_duplicates(["user_id", "ts", "created"])
    ties = stats.sample(400, random_state=1).assign(
        created=lambda d: d["created"] + pd.Timedelta(minutes=5), a=lambda d: d["a"] + 100
    )
    pd.concat([stats, ties]).sample(frac=1, random_state=2).to_parquet(data / "user_stats.parquet")
    pd.DataFrame(
        {"user_id": rng.integers(0, users, n // 4), "ts": _times(rng, n // 4, minutes), "c": rng.normal(size=n // 4)}
    ).drop_duplicates(["user_id", "ts"]).to_parquet(data / "user_forever.parquet")
    items = pd.DataFrame(
        {
            "item_id": [f"sku-{i}" for i in rng.integers(0, 50, n)],
            "ts": _times(rng, n, minutes),
            "d": rng.choice(["red", "green", None], n),
            "e": rng.normal(size=n),
        }
    )
    items = items.drop_duplicates(["item_id", "ts"])
    items["created"] = items["ts"]
    items.to_parquet(data / "item_stats.parquet")
    pairs = pd.DataFrame(
        {
            "user_id": rng.integers(0, users, n),
            "shop_id": rng.integers(0, 5, n),
            "ts": _times(rng, n, minutes),
            "f": rng.normal(size=n),
        }
    )
    pairs = pairs.drop_duplicates(["user_id", "shop_id", "ts"])
    pairs["created"] = pairs["ts"]
    pairs.to_parquet(data / "pair_stats.parquet")


def _entities(rng: np.random.Generator, data: Path, users: int, minutes: int) -> pd.DataFrame:
    n = 3_000
    frame = pd.DataFrame(
        {
            "user_id": rng.integers(0, users + 20, n),  # some users have no feature rows at all
            "item_id": [f"sku-{i}" for i in rng.integers(0, 60, n)],
            "shop_id": rng.integers(0, 6, n),
            "event_timestamp": _times(rng, n, minutes + 600),
            "row": np.arange(n),
        }
    )
    on_a_row = pd.read_parquet(data / "user_stats.parquet").sample(200, random_state=3)
    frame.loc[:199, ["user_id", "event_timestamp"]] = on_a_row[["user_id", "ts"]].to_numpy()  # exact ties
    frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"], utc=True).astype("datetime64[us, UTC]")
    return frame


def _random_repo(tmp_path: Path, seed: int) -> tuple[Path, pd.DataFrame, list]:
    """(data directory, entity rows, Feast objects) of one seed's random repo."""
    rng = np.random.default_rng(seed)
    data = tmp_path / "data"
    data.mkdir()
    users, minutes = 300, 3 * 24 * 60
    _feature_tables(rng, data, users, minutes)
    return data, _entities(rng, data, users, minutes), _objects(data, ttl_hours=[6, 20][seed - 1])


@pytest.mark.parametrize("seed", [1, 2])
def test_asof_store_matches_stock_feast(tmp_path: Path, seed: int) -> None:
    from fsml.stores.duckdb import AsofRetrievalJob, _unique_events

    data, entities, objects = _random_repo(tmp_path, seed)
    # both joins are exercised: on (event, created) where ties exist, on the event alone elsewhere
    assert not _unique_events(str(data / "user_stats.parquet"), ("user_id",), "ts")
    assert _unique_events(str(data / "item_stats.parquet"), ("item_id",), "ts")
    full = seed == 1
    if seed == 2:  # naive times are UTC, and another time column is made UTC as Feast does
        entities["event_timestamp"] = entities["event_timestamp"].dt.tz_localize(None)
        entities["seen_at"] = entities["event_timestamp"].dt.tz_localize("UTC").dt.tz_convert("Europe/Paris")
    results = {}
    for offline in ("duckdb", "fsml.stores.duckdb.DuckDBOfflineStore"):
        store = _store(tmp_path / offline.split(".")[-1], offline, objects)
        job = store.get_historical_features(entity_df=entities.copy(), features=REFS, full_feature_names=full)
        assert isinstance(job, AsofRetrievalJob) == (offline != "duckdb")
        results[offline] = job.to_df().sort_values("row").reset_index(drop=True)
    stock, fast = results.values()
    assert list(fast.columns) == list(stock.columns)
    pd.testing.assert_frame_equal(fast, stock, check_dtype=True)
    a = "user_stats__a" if full else "a"
    assert fast[a].isna().sum() > 100 and fast[a].notna().sum() > 100  # both cases are exercised


def test_fraud_training_frames_match_stock_feast(world, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real feature service, with its python on-demand view, through both stores."""
    from feast import FeatureStore, RepoConfig
    from fsml.training.dataset import entity_rows, labelled_features

    from fsml.featurestore import describe_service, open_store
    from fsml.repo import effective_config
    from tests.conftest import AS_OF

    fast = open_store(world.settings)
    spec = describe_service(fast, "fraud_model_v1")
    config = {**effective_config(world.settings), "offline_store": {"type": "duckdb"}, "coerce_tz_aware": True}
    stock = FeatureStore(repo_path=str(world.settings.feature_repo), config=RepoConfig(**config))
    entities = entity_rows(spec, AS_OF - timedelta(days=25), AS_OF, AS_OF)
    # Feast's per-request copy of a stream view rebuilds its batch source from its push source;
    # fsml's store reads the registered one (the change-point rows): stock Feast is given the same.
    from feast.infra.offline_stores.duckdb import DuckDBOfflineStore as Stock

    from fsml.stores.duckdb import _stored_tables

    original = Stock.get_historical_features

    def with_stored_tables(config, feature_views, feature_refs, entity_df, registry, project, *args, **kwargs):  # noqa: ANN001, ANN202
        _stored_tables(feature_views, registry, project)
        return original(config, feature_views, feature_refs, entity_df, registry, project, *args, **kwargs)

    monkeypatch.setattr(Stock, "get_historical_features", staticmethod(with_stored_tables))
    ours, theirs = labelled_features(fast, spec, entities), labelled_features(stock, spec, entities)
    assert len(ours) == len(entities) > 5_000
    pd.testing.assert_frame_equal(ours, theirs, check_dtype=True)


@pytest.mark.parametrize("seed", [1, 2])
def test_binary_search_lookup_gives_the_asof_join(tmp_path: Path, seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Batch scoring's lookup (fsml.stores.search) against the store's ASOF join, on the same
    random data, whole and in key-range partitions: unsorted files with created ties, string
    keys, TTLs and none (the composite-key view goes to DuckDB in both)."""
    import duckdb
    import pyarrow as pa

    from fsml.stores import search
    from fsml.stores.asof import _utc_columns
    from fsml.stores.partition import KeyRange

    searched_keys: list[str] = []
    real = search.lookup
    monkeypatch.setattr(search, "lookup", lambda rows, key, *a: searched_keys.append(key) or real(rows, key, *a))

    _, entities, objects = _random_repo(tmp_path, seed)
    store = _store(tmp_path / "fsml", "fsml.stores.duckdb.DuckDBOfflineStore", objects)
    job = store.get_historical_features(entity_df=entities, features=REFS, full_feature_names=True)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    table = _utc_columns(pa.Table.from_pandas(job.entity_df, preserve_index=False))
    joined = job.join(con, table)
    assert job.join(con, table, search=True).equals(joined)
    assert searched_keys == ["user_id", "user_id", "item_id"]  # the composite-key view went to DuckDB
    con.register("all_entities", table)
    for low, high in ((None, 100), (100, 220), (220, None)):
        part = KeyRange("user_id", "BIGINT", low, high)
        rows = con.sql(f"SELECT * FROM all_entities WHERE {part.entity_predicate()}").to_arrow_table()
        searched = job.partitioned(part).join(con, rows, search=True)
        expected = joined.filter(pa.array(np.isin(joined["row"].to_numpy(), rows["row"].to_numpy())))
        assert searched.select(joined.column_names).equals(expected)
    assert joined["user_stats__a"].null_count > 100 and joined["item_stats__d"].null_count < len(joined)
