"""Chunked materialization: same state on re-runs, resumable after a failure, Feast-readable."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import redis
from fsml.serving.materialize import chunk_bounds, materialize

from fsml.errors import FsmlError
from fsml.featurestore import apply_repo, open_store
from fsml.redis_server import RedisServer
from fsml.settings import Settings
from fsml.stores.redis import KEYS_FIELD, read_marks
from tests.conftest import AS_OF, World, redis_contents

pytestmark = pytest.mark.integration


def _dump(url: str) -> dict[bytes, object]:
    """Every key: Feast's hashes, the window views' event sets (with scores) and watermarks;
    fsml's readiness markers (fsml.stores.redis) are left out."""
    return redis_contents(redis.Redis.from_url(url), skip=(b"fsml:online:",))


@pytest.fixture
def private(world: World, tmp_path: Path):
    server = RedisServer(tmp_path / "redis", persist=True).start()
    settings = world.settings.model_copy(update={"redis_url": server.url, "materialize_chunk_hours": 12})
    yield server, settings
    server.stop()


def test_chunk_bounds_cover_the_range() -> None:
    bounds = chunk_bounds(AS_OF - timedelta(hours=30), AS_OF, timedelta(hours=12))
    assert [hi - lo for lo, hi in bounds] == [
        timedelta(hours=12),
        timedelta(hours=12),
        timedelta(hours=6),
    ]
    assert bounds[0][0] == AS_OF - timedelta(hours=30) and bounds[-1][1] == AS_OF


def test_rerun_gives_the_same_state_and_stock_feast_reads_it(private) -> None:
    server, settings = private
    first = materialize(settings, end=AS_OF)
    assert first.chunks == 4 + 4 + 4  # 2 days of TTL for each snapshot view, in 12-hour chunks
    assert first.windows == {"customer_transaction_windows": 400}  # each customer's recent events
    state = _dump(server.url)
    hashes = [k for k, v in state.items() if isinstance(v, dict) and b"fsml:" not in k]
    assert len(hashes) == settings_entities(settings)
    marks = read_marks(redis.Redis.from_url(server.url), settings.feast_project)
    assert set(marks) == {*first.views, *first.windows, KEYS_FIELD.decode()}  # every view marked, and the key count
    materialize(settings, end=AS_OF)
    assert _dump(server.url) == state
    store = open_store(settings)
    online = store.get_online_features(
        features=["customer_profile:age", "merchant_risk:merchant_txn_count_30d"],
        entity_rows=[{"customer_id": 3, "merchant_id": 5}],
    ).to_dict()
    assert online["age"][0] is not None and online["merchant_txn_count_30d"][0] is not None


def settings_entities(settings: Settings) -> int:
    import pandas as pd

    return sum(len(pd.read_parquet(settings.raw_dir / f"{t}.parquet")) for t in ("customers", "merchants"))


def test_failure_half_way_is_reported_and_a_rerun_completes(own_world: World, tmp_path: Path) -> None:
    # A registry of its own: Feast records finished chunks per project, whichever Redis it was.
    server = RedisServer(tmp_path / "redis", persist=True).start()
    settings = own_world.settings.model_copy(update={"redis_url": server.url, "materialize_chunk_hours": 12})
    apply_repo(settings)

    def kill_redis_after_five(what: str, done: int, total: int) -> None:
        if done == 5:
            server.stop()

    try:
        with pytest.raises(FsmlError, match=r"failed at .* after 5 of 12 chunks.*re-run"):
            materialize(settings, end=AS_OF, progress=kill_redis_after_five)
        server.start()
        resumed = materialize(settings, end=AS_OF, incremental=True)
        assert 0 < resumed.chunks < 12
        state = _dump(server.url)
    finally:
        server.stop()
    reference = RedisServer(tmp_path / "reference").start()
    try:
        materialize(settings.model_copy(update={"redis_url": reference.url}), end=AS_OF)
        assert state == _dump(reference.url)
    finally:
        reference.stop()


def test_empty_window_is_an_error(private) -> None:
    _, settings = private
    with pytest.raises(FsmlError, match="empty time window"):
        materialize(settings, start=AS_OF, end=AS_OF - timedelta(days=1))
