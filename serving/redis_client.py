"""A small asyncio Redis client for the scoring hot path: pipelined HMGETs, multiplexed.

Written by hand because redis-py's asyncio pipeline costs about 170 µs of CPU per request on
this path (it builds command objects, checks a connection out of a pool under a lock and wraps
every call in a retry policy), against about 20 µs here, measured with
``bench/redis_client.py``: on two cores that difference is most of a millisecond budget. It speaks
only what serving needs (HMGET, PING, AUTH, SELECT) and parses replies with hiredis, the parser
redis-py itself uses.

Each connection carries many requests at once: Redis answers in order, so replies are handed
to waiting requests first-in first-out. A lost connection fails the requests on it with
``ConnectionError`` (the service answers 503) and the next request reconnects, so the service
recovers by itself when Redis is back.
"""

from __future__ import annotations

import asyncio
import itertools
import ssl
from collections import deque
from typing import Any

import hiredis
from redis.connection import parse_url

from fsml.stores.ragged import pack


class _Waiter:
    __slots__ = ("future", "expected", "replies")

    def __init__(self, future: asyncio.Future, expected: int) -> None:
        self.future = future
        self.expected = expected
        self.replies: list[Any] = []


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.reader = hiredis.Reader()
        self.waiters: deque[_Waiter] = deque()
        self.transport: asyncio.Transport | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while (reply := self.reader.gets()) is not False:
            waiter = self.waiters[0]
            waiter.replies.append(reply)
            if len(waiter.replies) == waiter.expected:
                self.waiters.popleft()
                if not waiter.future.done():  # a request that timed out still owns its replies
                    waiter.future.set_result(waiter.replies)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        error = ConnectionError(f"connection to Redis lost: {exc or 'closed by the server'}")
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.future.done():
                waiter.future.set_exception(error)

    def send(self, payload: bytes, expected: int) -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        self.waiters.append(_Waiter(future, expected))
        self.transport.write(payload)  # type: ignore[union-attr]
        return future


def _expire(future: asyncio.Future) -> None:
    if not future.done():
        future.set_exception(TimeoutError("no reply from Redis in time"))


class RedisClient:
    cluster = False  # one server (``serving.redis_cluster.ClusterClient`` for a cluster)

    def __init__(
        self, url: str, timeout: float = 0.5, connections: int = 2, node: tuple[str, int] | None = None
    ) -> None:
        """A client of the server in ``url``, or of ``node`` (host, port) with the URL's credentials."""
        options = parse_url(url)
        self.host = node[0] if node else options.get("host", "localhost")
        self.port = node[1] if node else int(options.get("port", 6379))
        self.db = int(options.get("db", 0) or 0)
        self.username = options.get("username")
        self.password = options.get("password")
        self.tls = url.startswith("rediss://")
        self.timeout = timeout
        self._slots: list[_Protocol | None] = [None] * connections
        self._next = itertools.cycle(range(connections))
        self._connecting: dict[int, asyncio.Lock] = {i: asyncio.Lock() for i in range(connections)}

    async def _connection(self) -> _Protocol:
        index = next(self._next)
        protocol = self._slots[index]
        if protocol is not None and not protocol.closed:
            return protocol
        async with self._connecting[index]:
            protocol = self._slots[index]
            if protocol is None or protocol.closed:
                protocol = await asyncio.wait_for(self._open(), self.timeout)
                self._slots[index] = protocol
        return protocol

    async def _open(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        context = ssl.create_default_context() if self.tls else None
        _, protocol = await loop.create_connection(_Protocol, self.host, self.port, ssl=context)
        setup = []
        if self.password is not None:
            auth = [b"AUTH", *([self.username.encode()] if self.username else []), str(self.password).encode()]
            setup.append(pack(*auth))
        if self.db:
            setup.append(pack(b"SELECT", str(self.db).encode()))
        if setup:
            for reply in await protocol.send(b"".join(setup), len(setup)):
                if isinstance(reply, hiredis.ReplyError):
                    raise ConnectionError(f"Redis refused the connection set-up: {reply}")
        return protocol

    async def _call(self, payload: bytes, expected: int, reply_errors: bool = False) -> list[Any]:
        """The replies of ``expected`` commands; an error reply raises unless ``reply_errors``
        (a cluster client reads MOVED and ASK replies itself)."""
        return await self.collect(await self.submit(payload, expected), reply_errors)

    async def submit(self, payload: bytes, expected: int) -> asyncio.Future:
        """Send ``payload`` now; its replies arrive in the returned future (see ``collect``),
        so that a caller can send to several servers before it waits for any."""
        try:
            protocol = await self._connection()
        except (TimeoutError, OSError) as exc:
            raise self._unavailable(exc) from exc
        future = protocol.send(payload, expected)
        # A timer rather than asyncio.wait_for, which wraps every call in a task.
        timer = asyncio.get_running_loop().call_later(self.timeout, _expire, future)
        future.add_done_callback(lambda _: timer.cancel())
        return future

    async def collect(self, future: asyncio.Future, reply_errors: bool = False) -> list[Any]:
        try:
            replies = await future
        except (TimeoutError, OSError) as exc:
            raise self._unavailable(exc) from exc
        if not reply_errors:
            for reply in replies:
                if isinstance(reply, hiredis.ReplyError):
                    raise ConnectionError(f"Redis error: {reply}")
        return replies

    def _unavailable(self, exc: BaseException) -> ConnectionError:
        return ConnectionError(f"Redis at {self.host}:{self.port} unavailable: {exc or type(exc).__name__}")

    async def send_payload(self, payload: bytes, commands: int, reply_errors: bool = False) -> list[Any]:
        """Replies of ``commands`` commands already encoded as one RESP ``payload``."""
        return await self._call(payload, commands, reply_errors)

    async def execute(self, commands: list[bytes], keys: list[bytes]) -> list[Any]:
        """Replies of RESP-encoded ``commands`` (on ``keys``), pipelined."""
        return await self._call(b"".join(commands), len(commands))

    async def ping(self) -> bool:
        return (await self._call(pack(b"PING"), 1))[0] in (b"PONG", "PONG")

    async def aclose(self) -> None:
        for protocol in self._slots:
            if protocol is not None and protocol.transport is not None:
                protocol.transport.close()
