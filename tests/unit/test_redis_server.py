"""The private redis-server of the demo: starts, answers, and says how to get one when absent."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from fsml.errors import FsmlError
from fsml.redis_server import INSTALL_HINT, RedisServer


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


def test_missing_binary_says_how_to_get_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(FsmlError) as caught:
        RedisServer(tmp_path).start()
    assert str(caught.value) == INSTALL_HINT
    assert "\n" not in INSTALL_HINT and "docker compose up -d redis" in INSTALL_HINT
