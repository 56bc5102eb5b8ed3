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


def test_the_demos_redis_starts_without_any_system_redis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What `make demo` does on a fresh machine: no REDIS_URL, nothing Redis on PATH."""
    from fsml.examples.fraud import demo

    from fsml.redis_server import online_store
    from fsml.settings import Settings

    bare = tmp_path / "bin"
    bare.mkdir()
    monkeypatch.setenv("PATH", str(bare))
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("FSML_REDIS_URL", raising=False)
    assert demo.online_store is online_store  # the demo starts its Redis with this very function
    settings = Settings(home=tmp_path / "home")
    assert "redis_url" not in settings.model_fields_set
    with online_store(settings) as running:
        assert running.redis_url != settings.redis_url
        client = redis.Redis.from_url(running.redis_url)
        assert client.ping() and client.config_get("appendonly")["appendonly"] == "yes"
        client.set("kept", "1")
        assert Path(client.config_get("dir")["dir"]) == (tmp_path / "home" / "redis").resolve()
    with online_store(settings) as again:  # the next demo finds its data again
        assert redis.Redis.from_url(again.redis_url).get("kept") == b"1"
    given = Settings(home=tmp_path / "home", redis_url="redis://127.0.0.1:1/0")
    with online_store(given) as used:  # a REDIS_URL wins: nothing is started
        assert used is given
