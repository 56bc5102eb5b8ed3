"""Feast's Redis online store, configured from a ``redis://`` URL.

Stock Feast only understands ``host:port,db=0,password=...``; the platform's contract is a
``REDIS_URL``. The key layout, value encoding and every read and write path stay Feast's own,
so data written here is read back unchanged by stock ``get_online_features``. With Feast's
``redis_type: redis_cluster`` the URL names any node of the cluster: Feast's cluster client
finds the others, and the keys are the same (one hash per entity key, so all of an entity's
features live in one slot).
"""

from __future__ import annotations

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


class RedisOnlineStore(_FeastRedisOnlineStore):
    """Feast's Redis online store; only the connection string parsing differs."""

    @staticmethod
    def _parse_connection_string(connection_string: str):  # type: ignore[override]
        return parse_connection_string(connection_string)
