"""Run ``fsml serve`` as a separate process and wait until it answers.

The demo, the end-to-end tests and the benchmarks all talk to the service over real HTTP.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from pydantic import SecretStr

from fsml.errors import FsmlError
from fsml.redis_server import free_port
from fsml.settings import Settings


def settings_environ(settings: Settings) -> dict[str, str]:
    """The environment that makes a child process see the same settings."""
    env = {**os.environ, **settings.feast_environ()}
    for name, value in settings.model_dump().items():
        if value is None or name in ("home", "env", "redis_url"):
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        # lists and dicts as JSON, which pydantic-settings parses back
        env[f"FSML_{name.upper()}"] = json.dumps(value) if isinstance(value, list | dict) else str(value)
    return env


class ServerProcess:
    def __init__(
        self,
        settings: Settings,
        port: int | None = None,
        workers: int = 1,
        extra_env: dict[str, str] | None = None,
        feature_services: list[str] | None = None,
    ) -> None:
        self.settings = settings
        self.port = port or free_port()
        self.workers = workers
        self.feature_services = feature_services or []  # default: the settings' served services
        self.env = {**settings_environ(settings), **(extra_env or {})}
        self.log_path = settings.home / "logs" / f"serve-{self.port}.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, ready: bool = True, timeout: float = 90.0) -> ServerProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        command = [
            str(Path(sys.executable).parent / "fsml"),
            "serve",
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
            *(arg for name in self.feature_services for arg in ("--feature-service", name)),
        ]
        with open(self.log_path, "ab") as log:
            # from its state directory: nothing may depend on where the caller happens to be
            self._process = subprocess.Popen(
                command, env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=self.settings.home
            )
        self.wait("/readyz" if ready else "/healthz", timeout)
        return self

    def wait(self, path: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise FsmlError(f"fsml serve exited with {self._process.returncode}: {self.tail()}")
            try:
                if httpx.get(self.url + path, timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise FsmlError(f"fsml serve did not answer {path} within {timeout:.0f} s: {self.tail()}")

    def tail(self, lines: int = 5) -> str:
        if not self.log_path.exists():
            return ""
        return " | ".join(self.log_path.read_text(errors="replace").strip().splitlines()[-lines:])

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def kill(self) -> None:
        """SIGKILL of the server and its workers: nothing is flushed or closed."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
