"""The private redis-server of the demo: starts, answers, and says how to get one when absent."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from fsml.errors import FsmlError
from fsml.redis_server import INSTALL_HINT, RedisServer, packaged_binary, server_binary


def test_starts_on_a_free_port_and_restarts_with_its_data(tmp_path: Path) -> None:
    server = RedisServer(tmp_path, persist=True).start()
    try:
        redis.Redis.from_url(server.url).set("k", "v")
        server.stop()
        server.start()
        assert redis.Redis.from_url(server.url).get("k") == b"v"
        assert (tmp_path / "redis.log").is_file()
    finally:
        server.stop()


def test_without_a_system_redis_the_packaged_server_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh machine: no redis-server on PATH. The wheel's binary serves, as the demo uses it."""
    monkeypatch.setenv("PATH", str(tmp_path))
    assert server_binary() == str(packaged_binary())
    with RedisServer(tmp_path / "redis", persist=True) as server:
        client = redis.Redis.from_url(server.url)
        assert client.ping()
        assert client.info("server")["redis_version"].startswith("6.2")


def test_missing_binary_says_how_to_get_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr("fsml.redis_server.packaged_binary", lambda name="redis-server": None)
    with pytest.raises(FsmlError) as caught:
        RedisServer(tmp_path).start()
    assert str(caught.value) == INSTALL_HINT
    assert "\n" not in INSTALL_HINT and "docker compose up -d redis" in INSTALL_HINT
