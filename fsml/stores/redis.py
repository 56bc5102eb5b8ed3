"""Feast's Redis online store, configured from a ``redis://`` URL, with readiness markers.

Stock Feast only understands ``host:port,db=0,password=...``; the platform's contract is a
``REDIS_URL``. The key layout, value encoding and every read and write path stay Feast's own,
so data written here is read back unchanged by stock ``get_online_features``. With Feast's
``redis_type: redis_cluster`` the URL names any node of the cluster: Feast's cluster client
finds the others, and the keys are the same (one hash per entity key, so all of an entity's
features live in one slot).

Feast's layout gives no cheap way to ask "does the store hold rows of view V?" (rows of views
with the same join keys share one hash per entity). So every writer of online rows also sets a
marker: the hash ``fsml:online:<project>`` maps each view that has rows to its watermark (the end
of the last materialized range, or the newest event time pushed). Deleting the project's rows
deletes the markers, and so does a flushed or replaced Redis: the service's readiness reads the
markers of its views in one ``HMGET`` and is not ready while one is missing, and incremental
materialization reloads a view whose marker is missing.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Literal

from feast.infra.online_stores.redis import RedisOnlineStore as _FeastRedisOnlineStore
from feast.infra.online_stores.redis import RedisOnlineStoreConfig as _FeastRedisConfig
from redis.connection import parse_url

_URL_SCHEMES = ("redis://", "rediss://")


class RedisOnlineStoreConfig(_FeastRedisConfig):
    """Same options as Feast's, with ``connection_string`` also accepting a Redis URL."""

    type: Literal["fsml.stores.redis.RedisOnlineStore"] = "fsml.stores.redis.RedisOnlineStore"  # type: ignore[assignment]


def parse_connection_string(connection_string: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Turn a Redis URL or a Feast connection string into Feast's (startup nodes, kwargs)."""
    if not connection_string.startswith(_URL_SCHEMES):
        return _FeastRedisOnlineStore._parse_connection_string(connection_string)
    kwargs = parse_url(connection_string)
    node = {"host": kwargs.pop("host", "localhost"), "port": kwargs.pop("port", 6379)}
    if not kwargs.get("db"):  # database 0 is the default, and the only one a cluster has
        kwargs.pop("db", None)
    return [node], kwargs


def sync_client(url: str, redis_type: str = "redis", **options: Any) -> Any:
    """A redis-py client of the online store: the server of ``url``, or with ``redis_cluster`` the
    Redis Cluster that ``url``'s node belongs to."""
    import redis
    from redis.cluster import RedisCluster

    if redis_type == "redis_cluster":
        return RedisCluster.from_url(url, **options)
    return redis.Redis.from_url(url, **options)


KEYS_FIELD = b"#keys"  # not a Feast name: the project's key count after the last full write


def marker_key(project: str) -> bytes:
    return f"fsml:online:{project}".encode()


def _stamp(moment: datetime | str) -> bytes:
    return (moment.astimezone(UTC).isoformat() if isinstance(moment, datetime) else moment).encode()


def mark_views(client: Any, project: str, watermarks: dict[str, datetime | str]) -> None:
    """Record that the store holds rows of these views, up to these times (redis-py client)."""
    if watermarks:
        client.hset(marker_key(project), mapping={k: _stamp(v) for k, v in watermarks.items()})


def read_marks(client: Any, project: str) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in client.hgetall(marker_key(project)).items()}


def count_keys(client: Any, project: str) -> int:
    """Keys of the project (Feast's keys end with the project name), by SCAN: batch jobs only."""
    return sum(1 for _ in client.scan_iter(match=b"*" + project.encode(), count=1000))


def _newest(data: Iterable[Any]) -> datetime | None:
    times = [row[2] for row in data if row[2] is not None]
    return max(times) if times else None


class RedisOnlineStore(_FeastRedisOnlineStore):
    """Feast's Redis online store: a URL as connection string, and markers on every write.

    A write marks its view with ``HSETNX`` (the newest event time written), so it restores a
    lost marker without moving a materialization's watermark; it costs one more round trip.
    """

    @staticmethod
    def _parse_connection_string(connection_string: str):  # type: ignore[override]
        return parse_connection_string(connection_string)

    def online_write_batch(self, config: Any, table: Any, data: list, progress: Any) -> None:
        super().online_write_batch(config, table, data, progress)
        newest = _newest(data)
        if newest is not None:
            client = self._get_client(config.online_store)
            client.hsetnx(marker_key(config.project), table.name, _stamp(newest))

    async def online_write_batch_async(self, config: Any, table: Any, data: list, progress: Any) -> None:
        await super().online_write_batch_async(config, table, data, progress)
        newest = _newest(data)
        if newest is not None:
            client = await self._get_client_async(config.online_store)
            await client.hsetnx(marker_key(config.project), table.name, _stamp(newest))

    def delete_entity_values(self, config: Any, join_keys: list[str]) -> None:
        self._get_client(config.online_store).delete(marker_key(config.project))
        super().delete_entity_values(config, join_keys)
