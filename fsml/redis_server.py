"""A private ``redis-server`` process on a free loopback port, for the demo and the tests.

Used when no ``REDIS_URL`` is given: the server's files live in a directory of ours and the
process stops with the context manager. It can be stopped and started again on the same port,
which is how the tests take Redis away from a running service.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from fsml.errors import FsmlError

INSTALL_HINT = (
    "redis-server not found on PATH: install it (apt-get install redis-server, brew install "
    "redis) or run `docker compose up -d redis` and set REDIS_URL=redis://localhost:6379/0"
)


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
        binary = shutil.which("redis-server")
        if binary is None:
            raise FsmlError(INSTALL_HINT)
        self.directory.mkdir(parents=True, exist_ok=True)
        save = ["--save", "60 1000", "--appendonly", "yes"] if self.persist else ["--save", "", "--appendonly", "no"]
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

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
