"""Limits in front of every route: body size, body and header read time, header size.

``BodyLimits`` is ASGI middleware in front of both the prediction fast path and FastAPI (whose
own ``max_body_size`` would cover only its routes). A ``Content-Length`` over
``FSML_MAX_BODY_BYTES`` is answered 413 before a byte of the body is read; a chunked body is
answered 413 as soon as it passes the limit; a body that does not arrive within
``FSML_BODY_TIMEOUT_SECONDS`` is answered 408. All three close the connection, so the rest of an
oversized or stalled body is never read. The body is then handed to the app in one message.

Uvicorn 0.54 has no header timeout (its keep-alive timer stops at the first byte of a request)
and, with httptools, no limit on header size: a client that sends one header byte a second holds
a connection forever. ``GuardedHttpToolsProtocol`` (``fsml serve`` passes it as uvicorn's
``http``) is uvicorn's own httptools protocol plus a deadline for a request's headers
(``FSML_HEADER_TIMEOUT_SECONDS``, answered 408) and a cap on their size (``MAX_HEADER_BYTES``,
answered 400 by uvicorn's parser error path).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, MutableMapping
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from fsml.settings import Settings

MAX_HEADER_BYTES = 64 * 1024
CLOSE = [(b"content-type", b"application/json"), (b"connection", b"close")]


class _TooLarge(Exception):
    pass


class _Disconnected(Exception):
    pass


class Deadlines:
    """Deadlines of the body reads in progress, checked by one task every ``period`` seconds.

    A timer per request (``asyncio.timeout``) costs about 20 µs of CPU under uvloop, more than
    the rest of this middleware; registering a read here is a dictionary insert. A read past its
    deadline is cancelled, within ``period`` of it.
    """

    def __init__(self, period: float = 0.25) -> None:
        self.period = period
        self._reads: dict[asyncio.Task, float] = {}
        self._expired: set[asyncio.Task] = set()
        self._checker: asyncio.Task | None = None

    def watch(self, seconds: float) -> asyncio.Task:
        task = asyncio.current_task()
        loop = task.get_loop()
        self._reads[task] = loop.time() + seconds
        if self._checker is None or self._checker.done():
            self._checker = loop.create_task(self._check())
        return task

    def forget(self, task: asyncio.Task) -> None:
        self._reads.pop(task, None)

    def expired(self, task: asyncio.Task) -> bool:
        """Whether ``task`` was cancelled for its deadline (then it is uncancelled)."""
        if task not in self._expired:
            return False
        self._expired.discard(task)
        task.uncancel()
        return True

    async def _check(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.period)
            now = loop.time()
            for task in [t for t, d in self._reads.items() if d <= now]:
                del self._reads[task]
                self._expired.add(task)
                task.cancel()


class BodyLimits:
    def __init__(self, app: Any, max_bytes: int, timeout: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.deadlines = Deadlines()

    async def __call__(self, scope: MutableMapping[str, Any], receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length, chunked = None, False
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = value
            elif name == b"transfer-encoding":
                chunked = True
        if length is None and not chunked:  # no body: nothing to bound
            await self.app(scope, receive, send)
            return
        if length is not None and int(length) > self.max_bytes:  # the parser checked it is a number
            await _reply(send, 413, self._too_large())
            return
        task = self.deadlines.watch(self.timeout)
        try:
            body = await self._read(receive)
        except asyncio.CancelledError:
            if not self.deadlines.expired(task):
                raise
            await _reply(send, 408, f"request body not received within {self.timeout:g} s")
            return
        except _TooLarge:
            await _reply(send, 413, self._too_large())
            return
        except _Disconnected:
            return
        finally:
            self.deadlines.forget(task)
        await self.app(scope, replay_body(body, receive), send)

    async def _read(self, receive: Callable) -> bytes:
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                raise _TooLarge
            chunks.append(chunk)
            if not message.get("more_body"):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def _too_large(self) -> str:
        return f"request body larger than {self.max_bytes} bytes (FSML_MAX_BODY_BYTES)"


def replay_body(body: bytes, receive: Callable) -> Callable:
    """The body in one message, then the server's own ``receive`` (for ``http.disconnect``)."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replay() -> dict[str, Any]:
        return pending.pop() if pending else await receive()

    return replay


async def _reply(send: Callable, status: int, detail: str) -> None:
    body = orjson.dumps({"detail": detail})
    headers = [*CLOSE, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """Uvicorn's httptools protocol with a deadline and a size cap for each request's headers."""

    header_timeout: float = 10.0  # set by ``configure`` from the settings of the process

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._header_timer: asyncio.TimerHandle | None = None
        self._header_bytes = 0
        super().connection_made(transport)
        self._arm()  # a connection that sends nothing is closed too

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0
        self._arm()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value))
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def _count(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > MAX_HEADER_BYTES:
            # raised inside a parser callback: httptools reports a parser error, and uvicorn
            # answers 400 and closes the connection
            raise ValueError(f"request headers larger than {MAX_HEADER_BYTES} bytes")

    def _arm(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        body = orjson.dumps({"detail": f"request headers not received within {self.header_timeout:g} s"})
        self.transport.write(
            b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
            b"content-length: %d\r\n\r\n%s" % (len(body), body)
        )
        self.transport.close()


def configure(settings: Settings) -> None:
    """Set the header deadline of the connections this process will accept."""
    GuardedHttpToolsProtocol.header_timeout = settings.header_timeout_seconds


HTTP_PROTOCOL = f"{__name__}:{GuardedHttpToolsProtocol.__name__}"
