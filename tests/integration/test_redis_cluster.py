"""The online store on a real Redis Cluster: materialization, serving, and a master failing over."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import httpx
import numpy as np
import pytest
import redis
from fsml.serving.materialize import materialize
from fsml.serving.process import ServerProcess

from fsml.redis_server import RedisCluster
from fsml.stores.redis import marker_key
from tests.conftest import AS_OF, Champion, redis_contents
from tests.integration.test_materialization_engine import START, _objects, _store, _tables

pytestmark = [pytest.mark.integration, pytest.mark.redis_cluster]


def _masters(cluster: RedisCluster) -> list[redis.Redis]:
    clients = [redis.Redis(port=node.port) for node in cluster.nodes if node.running]
    return [c for c in clients if c.info("replication")["role"] == "master"]


def _dump(cluster: RedisCluster, skip: bytes = b"") -> dict[bytes, object]:
    out = {}
    for client in _masters(cluster):
        out |= redis_contents(client, skip=(skip,) if skip else ())
    return out


def _flush(cluster: RedisCluster) -> None:
    for client in _masters(cluster):
        client.flushall()


def test_fast_engine_writes_what_stock_feast_writes_on_a_cluster(
    tmp_path: Path, redis_cluster: RedisCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows are sent to the master of their key's slot, in batches of every size."""
    from fsml.stores import engine as fast_engine

    monkeypatch.setattr(fast_engine, "BATCH_ROWS", 700)
    data = tmp_path / "data"
    data.mkdir()
    _tables(data, np.random.default_rng(8))
    objects = _objects(data)
    dumps, online = [], []
    rows = [{"user_id": u, "shop": "s1"} for u in range(-5, 60)]
    features = ["stats:a", "stats:b", "stats:c", "stats:d", "stats:flag", "stats:small", "pairs:e"]
    for engine in ("local", "fsml.stores.engine.FsmlComputeEngine"):
        _flush(redis_cluster)
        store = _store(tmp_path / engine.split(".")[-1], redis_cluster.url, engine, objects)
        store.config.online_store.redis_type = "redis_cluster"
        for lo, hi in ((1, 2), (0, 1.5), (0, 3)):
            store.materialize(START + timedelta(days=lo), START + timedelta(days=hi))
        dumps.append(_dump(redis_cluster, skip=marker_key("diff")))  # readiness markers aside, as for one Redis
        online.append(store.get_online_features(features=features, entity_rows=rows).to_dict())
    stock, fast = dumps
    assert len(stock) > 400 and fast == stock
    assert all(len(list(c.scan_iter(count=1000))) > 50 for c in _masters(redis_cluster))  # spread over the masters
    assert online[0] == online[1]


def test_materialize_into_a_cluster_gives_single_redis_contents(world, tmp_path: Path, redis_cluster) -> None:
    """The world's views, chunked, into the cluster and into one Redis: the same keys and values,
    the same after a re-run, and stock Feast's cluster client reads them."""
    from fsml.featurestore import open_store
    from fsml.redis_server import RedisServer

    _flush(redis_cluster)
    clustered = world.settings.model_copy(
        update={"redis_url": redis_cluster.url, "redis_type": "redis_cluster", "materialize_chunk_hours": 48}
    )
    materialize(clustered, end=AS_OF)
    state = _dump(redis_cluster)
    materialize(clustered, end=AS_OF)
    assert _dump(redis_cluster) == state
    with RedisServer(tmp_path / "single") as single:
        materialize(clustered.model_copy(update={"redis_url": single.url, "redis_type": "redis"}), end=AS_OF)
        client = redis.Redis.from_url(single.url)
        assert state == redis_contents(client)
    assert any(key.startswith(b"fsml:") and b":window:" in key for key in state)  # window views' events too
    online = (
        open_store(clustered)
        .get_online_features(
            features=["customer_profile:credit_limit", "merchant_risk:merchant_txn_count_30d"],
            entity_rows=[{"customer_id": 3, "merchant_id": 5}],
        )
        .to_dict()
    )
    assert online["credit_limit"][0] is not None and online["merchant_txn_count_30d"][0] is not None


BODIES = [
    {"customer_id": c, "merchant_id": m, "amount": 12.5 + c, "timestamp": AS_OF.isoformat()}
    for c, m in [(3, 5), (17, 2), (41, 77), (88, 13), (150, 40), (233, 61), (301, 9), (399, 31), (405, 3)]
]


def _scores(api: httpx.Client) -> list[tuple[float, list[str]]]:
    reply = api.post("/v1/predict/batch", json={"rows": BODIES})
    assert reply.status_code == 200, reply.text
    return [(p["score"], p["features"]["missing"]) for p in reply.json()["predictions"]]


@pytest.mark.e2e
def test_serving_reads_the_same_features_from_a_cluster(
    champion: Champion, server, redis_cluster: RedisCluster
) -> None:
    settings = champion.settings.model_copy(
        update={"redis_url": redis_cluster.url, "redis_type": "redis_cluster", "reload_poll_seconds": 0.0}
    )
    _flush(redis_cluster)
    materialize(settings, end=AS_OF)
    with httpx.Client(base_url=server.url, timeout=10) as single:
        expected = _scores(single)
    with ServerProcess(settings) as clustered, httpx.Client(base_url=clustered.url, timeout=10) as api:
        assert _scores(api) == expected
        assert api.get("/readyz").status_code == 200


@pytest.mark.e2e
def test_a_master_failing_over_gives_503_then_the_same_answers(champion: Champion, tmp_path: Path) -> None:
    """Three masters with a replica each: one master dies; requests on the cluster fail with
    503 until its replica has taken over, then give the answers they gave before."""
    with RedisCluster(tmp_path / "cluster", masters=3, replicas=1) as cluster:
        settings = champion.settings.model_copy(
            update={"redis_url": cluster.url, "redis_type": "redis_cluster", "reload_poll_seconds": 0.0}
        )
        materialize(settings, end=AS_OF)
        for client in _masters(cluster):
            client.wait(1, 5_000)  # the replicas hold every key before their master dies
        victim = next(n for n in cluster.nodes[1:] if redis.Redis(port=n.port).info("replication")["role"] == "master")
        with ServerProcess(settings) as server, httpx.Client(base_url=server.url, timeout=10) as api:
            before = _scores(api)
            victim.kill()
            statuses = []
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                reply = api.post("/v1/predict/batch", json={"rows": BODIES})
                statuses.append(reply.status_code)
                if reply.status_code == 200 and 503 in statuses:
                    break
                assert reply.status_code in (200, 503), reply.text
                time.sleep(0.05)
            assert 503 in statuses, "the dead master's slots were never unavailable"
            assert statuses[-1] == 200, f"no recovery after the failover: {statuses[-5:]}"
            assert _scores(api) == before
            assert "online store unavailable" in server.log_path.read_text()
