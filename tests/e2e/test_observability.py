"""Request ids, JSON logs, the access log, /metrics, and the documented, offline API."""

from __future__ import annotations

import json
import re
import time

import httpx
import pytest

from tests.conftest import AS_OF, Champion

pytestmark = pytest.mark.e2e

BODY = {"customer_id": 3, "merchant_id": 5, "amount": 42.5, "timestamp": AS_OF.isoformat()}


def test_request_id_is_honoured_returned_and_logged(server) -> None:
    given = httpx.post(server.url + "/v1/predict", json=BODY, headers={"X-Request-ID": "trace-7f3a.1"})
    assert given.status_code == 200 and given.headers["x-request-id"] == "trace-7f3a.1"
    made = httpx.get(server.url + "/v1/model")
    assert re.fullmatch(r"[0-9a-f]{24}", made.headers["x-request-id"])
    assert httpx.get(server.url + "/v1/model").headers["x-request-id"] != made.headers["x-request-id"]
    hostile = httpx.get(server.url + "/healthz", headers={"X-Request-ID": "x" * 500})
    assert hostile.headers["x-request-id"] != "x" * 500
    httpx.post(server.url + "/v1/predict", json={"customer_id": "bad"}, headers={"X-Request-ID": "bad-1"})
    deadline = time.monotonic() + 5  # the access line is written once the answer is sent: wait for it
    while '"bad-1"' not in server.log_path.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    lines = [json.loads(line) for line in server.log_path.read_text().splitlines() if line.strip()]
    access = {e["request_id"]: e for e in lines if e["logger"] == "fsml.access"}
    entry = access["trace-7f3a.1"]
    assert {"time", "level", "logger", "message", "request_id", "route", "status", "latency_ms"} <= set(entry)
    assert (entry["route"], entry["status"], entry["level"]) == ("/v1/predict", 200, "info")
    assert access["bad-1"]["status"] == 422 and access[made.headers["x-request-id"]]["route"] == "/v1/model"


def test_metrics_add_process_scores_decisions_and_freshness(server) -> None:
    for _ in range(16):  # feature ages are sampled, one request in 16
        httpx.post(server.url + "/v1/predict", json=BODY)
    text = httpx.get(server.url + "/metrics").text
    for name in ("process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds"):
        assert re.search(rf"^{name} \d", text, re.M), name
    assert re.search(r'^fsml_score_bucket\{le="0.5",model="fraud_model_v1"\} [1-9]', text, re.M)
    assert re.search(r'^fsml_predictions_total\{decision="(pass|flag)",model="fraud_model_v1"\} [1-9]', text, re.M)
    assert re.search(r'^fsml_feature_age_seconds_count\{view="customer_profile"\} [1-9]', text, re.M)
    assert re.search(r"^fsml_model_loaded 1.0", text, re.M)


def test_two_workers_report_each_process_and_no_access_log(champion: Champion) -> None:
    from fsml.serving.process import ServerProcess

    with ServerProcess(champion.settings, workers=2, extra_env={"FSML_ACCESS_LOG": "false"}) as quiet:
        for _ in range(20):
            httpx.post(quiet.url + "/v1/predict", json=BODY)
        text = httpx.get(quiet.url + "/metrics").text
        log = quiet.log_path.read_text()
    pids = set(re.findall(r'^process_resident_memory_bytes\{pid="(\d+)"\}', text, re.M))
    assert len(pids) >= 2, text[-2000:]
    assert re.search(r'^fsml_requests_total\{method="POST",route="/v1/predict",status="200"\} 20', text, re.M)
    assert '"fsml.access"' not in log


def test_openapi_has_examples_errors_and_the_key_scheme(server) -> None:
    schema = httpx.get(server.url + "/openapi.json").json()
    components = schema["components"]
    for name, component in components["schemas"].items():
        assert component.get("examples"), name
    assert set(components["schemas"]["PredictRequest"]["examples"][0]) == {"customer_id", "merchant_id", "amount",
                                                                           "timestamp"}  # fmt: skip
    scheme = components["securitySchemes"]["APIKeyHeader"]
    assert (scheme["type"], scheme["in"], scheme["name"]) == ("apiKey", "header", "X-API-Key")
    paths = schema["paths"]
    assert {"200", "413", "422", "503"} <= set(paths["/v1/predict"]["post"]["responses"])
    assert {"200", "401", "503"} <= set(paths["/admin/reload"]["post"]["responses"])
    assert paths["/admin/reload"]["post"]["security"] == [{"APIKeyHeader": []}]


def test_docs_assets_are_served_by_the_service(server) -> None:
    for page in ("/docs", "/redoc"):
        html = httpx.get(server.url + page).text
        assert "cdn" not in html.lower() and "googleapis" not in html
        for asset in re.findall(r'(?:src|href)="(/static-offline-docs/[^"]+)"', html):
            assert httpx.get(server.url + asset).status_code == 200, asset
