"""Redis stopped and restarted under a running service: 503 while it is away, then recovery."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from fsml.serving.materialize import materialize
from fsml.serving.process import ServerProcess

from fsml.redis_server import RedisServer
from tests.conftest import AS_OF, Champion

pytestmark = pytest.mark.e2e

BODY = {"customer_id": 3, "merchant_id": 5, "amount": 42.5, "timestamp": AS_OF.isoformat()}


def test_service_survives_a_redis_restart(champion: Champion, tmp_path: Path) -> None:
    redis = RedisServer(tmp_path / "redis", persist=True).start()
    settings = champion.settings.model_copy(update={"redis_url": redis.url, "reload_poll_seconds": 0.0})
    materialize(settings, end=AS_OF)
    statuses: list[int] = []
    try:
        with (
            ServerProcess(settings) as server,
            httpx.Client(base_url=server.url, timeout=10) as api,
        ):
            first = api.post("/v1/predict", json=BODY)
            assert first.status_code == 200 and first.json()["features"]["missing"] == []

            redis.stop()
            for _ in range(5):
                reply = api.post("/v1/predict", json=BODY)
                statuses.append(reply.status_code)
                assert reply.status_code == 503
                assert "online store unavailable" in reply.json()["detail"]
            ready = api.get("/readyz")
            assert ready.status_code == 503 and "online store unavailable" in ready.text
            assert api.get("/healthz").status_code == 200

            redis.start()  # same port, same append-only file: the features come back
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                reply = api.post("/v1/predict", json=BODY)
                statuses.append(reply.status_code)
                if reply.status_code == 200:
                    break
                time.sleep(0.1)
            assert reply.status_code == 200
            assert reply.json()["score"] == pytest.approx(first.json()["score"], abs=1e-12)
            assert api.get("/readyz").status_code == 200
            assert "fsml_online_store_errors_total" in api.get("/metrics").text
            assert "online store unavailable" in server.log_path.read_text()
    finally:
        redis.stop()
    assert 500 not in statuses
