"""``mlflow models serve`` on the registered champion answers what ``/v1/predict`` answers."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from fsml.redis_server import free_port
from tests.conftest import AS_OF, Champion

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def mlflow_server(champion: Champion, tmp_path_factory: pytest.TempPathFactory):
    settings = champion.settings
    port = free_port()
    name = settings.model_name(settings.feature_service)
    command = [
        str(Path(sys.executable).parent / "mlflow"), "models", "serve", "-m", f"models:/{name}@champion",
        "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    log_path = tmp_path_factory.mktemp("mlflow-serve") / "serve.log"
    # MLflow starts uvicorn by name: the environment's bin directory goes on PATH, as when it is active.
    bin_dir = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": settings.tracking_uri,
        "PATH": bin_dir + os.pathsep + os.environ["PATH"],
    }
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            assert process.poll() is None, log_path.read_text()[-3000:]
            try:
                if httpx.get(url + "/ping", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        else:
            pytest.fail(f"mlflow models serve did not start: {log_path.read_text()[-3000:]}")
        yield url
    finally:
        os.killpg(process.pid, 15)
        process.wait(timeout=30)


def test_mlflow_serve_gives_the_service_scores(server, mlflow_server: str) -> None:
    rows = [
        {"customer_id": c, "merchant_id": m, "amount": a, "timestamp": AS_OF.isoformat()}
        for c, m, a in [
            (3, 5, 42.5),
            (17, 2, 900.0),
            (99_999_999, 7, 12.0),
            (40, 11, 3.5),
            (99_999_999, 99_999_999, 8.0),
        ]
    ]
    with httpx.Client(timeout=30) as http:
        answers = [http.post(server.url + "/v1/predict?include_values=true", json=r).json() for r in rows]
        records = [a["features"]["values"] for a in answers]
        reply = http.post(mlflow_server + "/invocations", json={"dataframe_records": records})
    assert reply.status_code == 200, reply.text
    predictions = reply.json()["predictions"]
    assert len(predictions) == len(rows)
    for answer, prediction in zip(answers, predictions, strict=True):
        assert prediction["score"] == pytest.approx(answer["score"], abs=1e-12)
        assert prediction["decision"] == answer["decision"]
        assert prediction["all_missing"] == answer["features"]["all_missing"]
    assert any(a["features"]["missing"] for a in answers)  # an unknown customer is scored alike
    assert answers[-1]["decision"] == "review"  # nothing stored is known: the policy decides, in both
