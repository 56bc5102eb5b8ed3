"""The serving path's cluster client on a real Redis Cluster: routing, MOVED and ASK."""

from __future__ import annotations

import asyncio

import pytest
import redis
from fsml.serving.redis_cluster import ClusterClient
from redis.cluster import RedisCluster as PyCluster
from redis.crc import key_slot

from fsml.redis_server import RedisCluster
from fsml.stores.ragged import pack

pytestmark = [pytest.mark.integration, pytest.mark.redis_cluster]


def _hmgets(keys: list[bytes]) -> list[bytes]:
    return [pack(b"HMGET", key, b"a", b"b") for key in keys]


@pytest.fixture
def filled(redis_cluster: RedisCluster) -> tuple[PyCluster, list[bytes]]:
    client = PyCluster.from_url(redis_cluster.url)
    keys = [b"k%d\x7b\x00%d" % (i, i) for i in range(300)]  # some with a '{' byte, as Feast's keys have
    for i, key in enumerate(keys):
        client.hset(key, mapping={b"a": str(i).encode(), b"b": b"x" * (i % 7)})
    yield client, keys
    for key in keys:
        client.delete(key)


async def _read(url: str, keys: list[bytes], corrupt: bool = False) -> list:
    client = ClusterClient(url, timeout=2.0)
    try:
        if corrupt:  # a slot map from before a resharding: every slot on one node
            await client._refresh()
            client._slots = [client._slots[0]] * len(client._slots)
        return await client.execute(_hmgets(keys), keys)
    finally:
        await client.aclose()


def test_reads_are_routed_by_slot(redis_cluster: RedisCluster, filled) -> None:
    py, keys = filled
    expected = [py.hmget(key, [b"a", b"b"]) for key in keys]
    assert asyncio.run(_read(redis_cluster.url, keys)) == expected
    assert len({key_slot(k) // 5461 for k in keys}) == 3  # the keys span the three masters


def test_a_stale_slot_map_is_refreshed_on_moved(redis_cluster: RedisCluster, filled) -> None:
    py, keys = filled
    expected = [py.hmget(key, [b"a", b"b"]) for key in keys]
    assert asyncio.run(_read(redis_cluster.url, keys, corrupt=True)) == expected


def test_a_key_of_a_migrating_slot_is_asked_for(redis_cluster: RedisCluster, filled) -> None:
    """Slot migration by hand, as redis-cli --cluster reshard does it: the moved key is read from
    the importing node with ASKING, the others still from their owner."""
    py, keys = filled
    key = keys[0]
    slot = key_slot(key)
    owner = py.get_node_from_key(key)
    target = next(n for n in py.get_primaries() if n.name != owner.name)
    source_client, target_client = redis.Redis(port=owner.port), redis.Redis(port=target.port)
    target_id, source_id = target_client.cluster("myid"), source_client.cluster("myid")
    try:
        target_client.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
        source_client.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
        source_client.execute_command("MIGRATE", target.host, target.port, key, 0, 5000)
        same_slot = [k for k in keys if key_slot(k) == slot]
        assert asyncio.run(_read(redis_cluster.url, keys[:20])) == [
            [b"0", b""] if k == key else [str(keys.index(k)).encode(), b"x" * (keys.index(k) % 7)] for k in keys[:20]
        ]
        assert same_slot == [key]
    finally:  # the slot stable again on its owner, the key back home
        source_client.execute_command("CLUSTER", "SETSLOT", slot, "NODE", source_id)
        with target_client.pipeline(transaction=False) as pipe:  # ASKING: the slot is not the target's
            pipe.execute_command("ASKING").execute_command("MIGRATE", owner.host, owner.port, key, 0, 5000)
            pipe.execute()
        target_client.execute_command("CLUSTER", "SETSLOT", slot, "NODE", source_id)
        redis_cluster.wait_ok()
