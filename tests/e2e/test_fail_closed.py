"""Fail closed: a store without the served views' rows is not ready, rows that know nothing are
not passed, keys that are blank close the admin routes, and 503s show no paths."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import redis
from fsml.serving.materialize import materialize
from fsml.serving.process import ServerProcess

from fsml.featurestore import apply_repo
from fsml.redis_server import RedisServer
from fsml.stores.redis import count_keys
from tests.conftest import AS_OF, Champion, make_settings

pytestmark = pytest.mark.e2e

BODY = {"transaction_id": 1, "customer_id": 3, "merchant_id": 5, "amount": 42.5, "timestamp": AS_OF.isoformat()}
VIEWS = {"customer_profile", "customer_transaction_windows", "merchant_risk"}


@pytest.fixture(scope="module")
def private(champion: Champion, tmp_path_factory: pytest.TempPathFactory):
    """The champion served from a Redis of its own, which these tests flush."""
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    settings = champion.settings.model_copy(update={"redis_url": server.url, "reload_poll_seconds": 0.0})
    try:
        materialize(settings, end=AS_OF)
        with ServerProcess(settings) as service:
            yield settings, service, redis.Redis.from_url(server.url)
    finally:
        server.stop()


def test_a_flushed_store_is_not_ready_and_answers_review(private) -> None:
    settings, service, client = private
    with httpx.Client(base_url=service.url, timeout=10) as api:
        assert api.get("/readyz").status_code == 200
        known = api.post("/v1/predict", json=BODY).json()
        assert known["features"]["all_missing"] is False and known["decision"] in ("flag", "pass")

        client.flushall()
        ready = api.get("/readyz")
        assert ready.status_code == 503
        [problem] = ready.json()["problems"]
        assert problem.startswith("online store holds no rows of ") and "fsml features materialize" in problem
        assert {v for v in VIEWS if v in problem} == VIEWS

        blind = api.post("/v1/predict", json=BODY).json()
        assert blind["features"]["all_missing"] is True and blind["decision"] == "review"
        assert set(blind["features"]["missing"]) >= {"customer_profile__age", "merchant_risk__merchant_fraud_rate_30d"}
        batch = api.post("/v1/predict/batch", json={"rows": [BODY, BODY]}).json()
        assert [p["decision"] for p in batch["predictions"]] == ["review", "review"]
        metrics = api.get("/metrics").text
        assert 'fsml_predictions_total{decision="review",model="fraud_model_v1"} 3.0' in metrics
        assert 'fsml_all_features_missing_total{model="fraud_model_v1"} 3.0' in metrics

        # incremental materialization sees the lost rows (not only what is newer than its watermark)
        refilled = materialize(settings, end=AS_OF, incremental=True)
        assert set(refilled.refilled) >= VIEWS and refilled.chunks > 0
        assert api.get("/readyz").status_code == 200
        again = api.post("/v1/predict", json=BODY).json()
        assert again["features"]["all_missing"] is False and again["score"] == known["score"]


def test_incremental_materialization_refills_lost_keys(private) -> None:
    settings, _, client = private
    materialize(settings, end=AS_OF, incremental=True)
    full = count_keys(client, settings.feast_project)
    assert materialize(settings, end=AS_OF, incremental=True).chunks == 0  # nothing new, nothing lost
    victims = [k for k in client.scan_iter(match=b"*" + settings.feast_project.encode()) if b"fsml:online" not in k]
    client.delete(*victims[:25])  # evicted behind our back: the markers are still there
    result = materialize(settings, end=AS_OF, incremental=True)
    assert set(result.refilled) >= VIEWS and "fewer than" in next(iter(result.refilled.values()))
    assert count_keys(client, settings.feast_project) == full


def test_an_unknown_customer_at_an_unknown_merchant_is_reviewed(private) -> None:
    _, service, _ = private
    with httpx.Client(base_url=service.url, timeout=10) as api:
        one_known = api.post("/v1/predict", json={**BODY, "customer_id": 99_999_999}).json()
        assert one_known["features"]["all_missing"] is False  # the merchant's features are there
        none_known = api.post("/v1/predict", json={**BODY, "customer_id": 99_999_999, "merchant_id": 99_999}).json()
        assert none_known["features"]["all_missing"] is True and none_known["decision"] == "review"


def test_without_a_model_503s_name_no_paths_and_a_blank_key_closes_admin(champion: Champion, tmp_path: Path) -> None:
    """A service whose MLflow store does not exist yet, started with FSML_API_KEY set to blanks."""
    settings = make_settings(tmp_path / "home", champion.settings.redis_url)
    apply_repo(settings)
    service = ServerProcess(settings, extra_env={"FSML_API_KEY": "   "})
    service.start(ready=False)
    try:
        with httpx.Client(base_url=service.url, timeout=10) as api:
            ready = api.get("/readyz")
            predicted = api.post("/v1/predict", json=BODY)
            reload = api.post("/admin/reload", headers={"X-API-Key": "anything"})
            unkeyed = api.post("/admin/reload")
        for reply in (ready, predicted):
            assert reply.status_code == 503 and "no MLflow store" in reply.text
            assert str(tmp_path) not in reply.text and "/home/" not in reply.text
        assert "pytest" in service.log_path.read_text()  # the log has the whole reason, with the path
        assert reload.status_code == unkeyed.status_code == 401
        assert "closed: set FSML_API_KEY" in unkeyed.json()["detail"]
    finally:
        service.stop()
