"""The scoring path's Redis client for a Redis Cluster: HMGETs routed by slot, one pipeline per node.

A request's HMGETs are grouped by the node that serves each key's slot (``CRC16`` of the key,
hash tags included: ``redis.crc.key_slot``), sent to the nodes at the same time, one pipelined
payload each, over the single-server client of ``serving.redis_client`` (which multiplexes
many requests on few connections), and the replies are put back in the request's order.

The slot map comes from ``CLUSTER SLOTS`` of any node that answers, fetched at the first
request and again after anything that says it changed: a ``MOVED`` reply (the request is then
sent once more by the new map), or a node that cannot be reached (the request fails with
``ConnectionError``, which the service answers with 503, and the next request asks the cluster
again). During a failover requests on the dead master's slots fail until a replica has taken
over; a reply is never taken from a node that does not own the key, so a value is never wrong.
An ``ASK`` reply (a slot being migrated) is followed for that command alone, with ``ASKING``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from typing import Any

import hiredis
from fsml.serving.redis_client import RedisClient
from redis.connection import parse_url
from redis.crc import key_slot

from fsml.settings import Settings
from fsml.stores.ragged import pack

log = logging.getLogger(__name__)

Address = tuple[str, int]


class ClusterClient:
    cluster = True

    def __init__(self, url: str, timeout: float = 0.5, connections: int = 1) -> None:
        options = parse_url(url)
        self.url = url
        self.seed: Address = (options.get("host", "localhost"), int(options.get("port", 6379)))
        self.timeout = timeout
        self.connections = connections
        self._nodes: dict[Address, RedisClient] = {}
        self._slots: list[Address | None] = []
        self._stale = True
        self._refreshing = asyncio.Lock()

    def _node(self, address: Address) -> RedisClient:
        if address not in self._nodes:
            self._nodes[address] = RedisClient(self.url, self.timeout, self.connections, node=address)
        return self._nodes[address]

    async def _refresh(self) -> None:
        async with self._refreshing:
            if not self._stale:
                return
            failures = []
            for address in dict.fromkeys([self.seed, *self._nodes]):
                try:
                    (reply,) = await self._node(address).send_payload(pack(b"CLUSTER", b"SLOTS"), 1)
                except ConnectionError as exc:
                    failures.append(str(exc))
                    continue
                self._slots = _slot_map(reply, address[0])
                self._stale = False
                log.info("Redis Cluster slot map: %d masters", len({a for a in self._slots if a}))
                return
            raise ConnectionError(f"no Redis Cluster node answered CLUSTER SLOTS: {'; '.join(failures)}")

    def _owner(self, key: bytes) -> Address:
        owner = self._slots[key_slot(key)]
        if owner is None:
            raise ConnectionError("Redis Cluster has slots that no node serves (CLUSTERDOWN)")
        return owner

    async def execute(self, commands: list[bytes], keys: list[bytes]) -> list[Any]:
        """Replies of RESP-encoded ``commands`` on ``keys``, in order."""
        for _ in range(2):
            if self._stale:
                await self._refresh()
            replies = await self._send(commands, keys)
            moved = [r for r in replies if isinstance(r, hiredis.ReplyError) and str(r).startswith("MOVED")]
            if not moved:
                return await self._follow_ask(commands, replies)
            self._stale = True  # resharded or failed over: ask the cluster again, then retry once
            log.info("Redis Cluster: %s; refreshing the slot map", moved[0])
        raise ConnectionError(f"Redis Cluster keeps redirecting: {moved[0]}")

    async def _send(self, commands: list[bytes], keys: list[bytes]) -> list[Any]:
        groups: dict[Address, list[int]] = defaultdict(list)
        for index, key in enumerate(keys):
            groups[self._owner(key)].append(index)
        replies: list[Any] = [None] * len(commands)
        try:
            # every node's pipeline sent before any is waited for (no task per node, as gather makes)
            sent = []
            for address, indices in groups.items():
                node = self._node(address)
                sent.append((node, await node.submit(_joined(commands, indices), len(indices)), indices))
            for node, future, indices in sent:
                for index, reply in zip(indices, await node.collect(future, reply_errors=True), strict=True):
                    replies[index] = reply
        except ConnectionError:
            self._stale = True  # a node down: the next request asks the cluster who serves its slots
            raise
        return replies

    async def _follow_ask(self, commands: list[bytes], replies: list[Any]) -> list[Any]:
        for index, reply in enumerate(replies):
            if not isinstance(reply, hiredis.ReplyError):
                continue
            parts = str(reply).split()
            if parts[0] != "ASK":  # CLUSTERDOWN, TRYAGAIN, LOADING...: unavailable for now
                raise ConnectionError(f"Redis Cluster error: {reply}")
            host, _, port = parts[2].rpartition(":")
            node = self._node((host, int(port)))
            asked = await node.send_payload(pack(b"ASKING") + commands[index], 2, True)
            if isinstance(asked[1], hiredis.ReplyError):
                raise ConnectionError(f"Redis Cluster error: {asked[1]}")
            replies[index] = asked[1]
        return replies

    async def ping(self) -> bool:
        """Every master answers."""
        if self._stale:
            await self._refresh()
        masters = {a for a in self._slots if a is not None}
        try:
            answers = await asyncio.gather(*(self._node(a).ping() for a in masters))
        except ConnectionError:
            self._stale = True
            raise
        return all(answers) and len(masters) > 0

    async def aclose(self) -> None:
        for node in self._nodes.values():
            await node.aclose()


def online_client(
    settings: Settings, timeout_ms: int | None = None, connections: int = 2
) -> RedisClient | ClusterClient:
    """The client of the online store the settings name (``FSML_REDIS_TYPE``): fails fast
    (``timeout_ms``, FSML_REDIS_TIMEOUT_MS by default) when Redis is down, reconnects when it is
    back."""
    timeout = (timeout_ms if timeout_ms is not None else settings.redis_timeout_ms) / 1000
    if settings.redis_type == "redis_cluster":
        return ClusterClient(settings.redis_url, timeout=timeout)  # one connection per node: as many as nodes
    return RedisClient(settings.redis_url, timeout=timeout, connections=connections)


def _joined(commands: list[bytes], indices: list[int]) -> bytes:
    return b"".join(commands[i] for i in indices)


def _slot_map(reply: list[Any], default_host: str) -> list[Address | None]:
    """Slot -> master address, from a ``CLUSTER SLOTS`` reply (an empty host is the node asked)."""
    slots: list[Address | None] = [None] * 16384
    for entry in reply:
        low, high, master = int(entry[0]), int(entry[1]), entry[2]
        host = master[0].decode() if isinstance(master[0], bytes) else str(master[0])
        address = (host or default_host, int(master[1]))
        slots[low : high + 1] = [address] * (high - low + 1)
    return slots
