"""The parcel example, a second domain, through the whole loop; its two models side by side.

Nothing here is the fraud example: other entities (an integer courier, a string depot code),
another label, id and time column, pandas- and python-mode on-demand views, every kind of
Parquet time, relative paths in a repo that is not the working directory, a push source of its
own feeding a window view (dispatches, pushed as a backfill before training and through
``/v1/push`` while serving). One ``fsml serve``
hosts both models; each is scored, monitored and retrained with its own ``--feature-service``,
and nothing of one model lands in the other's logs, reports or state.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import httpx
import numpy as np
import pandas as pd
import pytest
from fsml.serving.process import ServerProcess
from fsml.training.dataset import with_features

from fsml.featurestore import describe_service, open_store
from tests.conftest import API_KEY, TEST_SETTINGS, Repo
from tests.repos import PARCEL_SERVICES, PARCELS_END

pytestmark = pytest.mark.e2e

FSML = Path(sys.executable).parent / "fsml"
V1, V2 = PARCEL_SERVICES
END = pd.Timestamp(PARCELS_END, tz="UTC")
ANSI = re.compile(r"\x1b\[")


def cli(repo: Repo, *args: str, **env: str) -> dict[str, Any]:
    """``fsml ... --json`` as a process, from a directory that is neither the repo nor the project."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("FSML_")}
    environ |= {f"FSML_{k.upper()}": str(v) for k, v in TEST_SETTINGS.items()}
    environ |= {
        "FSML_HOME": str(repo.home),
        "FSML_FEATURE_REPO": str(repo.settings.feature_repo),
        "FSML_FEATURE_SERVICE": repo.settings.feature_service,
        "REDIS_URL": repo.settings.redis_url,
        **env,
    }
    done = subprocess.run(
        [str(FSML), *args, "--json"], env=environ, cwd=repo.home.parent, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert not ANSI.search(done.stdout), done.stdout  # --json output is for programs: no terminal codes
    return json.loads(done.stdout.strip().splitlines()[-1])


def _rows(repo: Repo, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Dispatched parcels in [start, end): the fields of a predict request."""
    frame = pd.read_parquet(repo.settings.feature_repo / "data" / "deliveries.parquet")
    frame = frame[
        (frame["dispatched_at"] >= start.tz_localize(None)) & (frame["dispatched_at"] < end.tz_localize(None))
    ]
    return frame[["parcel_id", "courier_id", "depot_code", "distance_km", "weight_kg", "dispatched_at"]]


def _body(rows: pd.DataFrame) -> list[dict[str, Any]]:
    return [{**r, "dispatched_at": r["dispatched_at"].isoformat() + "Z"} for r in rows.to_dict("records")]


@pytest.fixture(scope="module")
def server(parcels: Repo):
    with ServerProcess(parcels.settings, feature_services=[V1, V2], extra_env={"FSML_API_KEY": API_KEY}) as process:
        yield process


@pytest.fixture(scope="module")
def api(server) -> httpx.Client:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


def test_one_process_hosts_both_models(api: httpx.Client, parcels: Repo) -> None:
    ready = api.get("/readyz").json()
    versions = {name: parcels.outcomes[name].registered.version for name in PARCEL_SERVICES}
    assert ready["status"] == "ready" and ready["models"] == versions
    body = _body(_rows(parcels, END - pd.Timedelta(days=4), END - pd.Timedelta(days=3)).head(3))
    default = api.post("/v1/predict", json=body[0]).json()
    one = api.post(f"/v1/models/{V1}/predict", json=body[0]).json()
    two = api.post(f"/v1/models/{V2}/predict", json=body[0]).json()
    assert default == one and default["model"]["name"] == f"fsml-dev-{V1}"
    assert two["model"] == {"name": f"fsml-dev-{V2}", "version": versions[V2]}
    assert one["parcel_id"] == two["parcel_id"] == body[0]["parcel_id"]  # the repo's id, echoed
    assert api.get(f"/v1/models/{V2}").json()["feature_service"] == V2
    assert set(api.get("/v1/models").json()["models"]) == {V1, V2}
    assert api.post("/v1/models/nope/predict", json=body[0]).status_code == 404
    for path in ("/v1/predict", f"/v1/models/{V2}/predict"):  # each model validates its own inputs
        reply = api.post(path, json={**body[0], "depot_code": ""})
        assert reply.status_code == 422 and "depot_code" in reply.text
    metrics = api.get("/metrics").text
    assert f'fsml_predictions_total{{decision="{default["decision"]}",model="{V1}"}}' in metrics
    assert f'route="/v1/models/{V2}/predict"' in metrics


def test_windows_shrank_to_the_labelled_history(parcels: Repo) -> None:
    """37 days of labels before the as-of time, 70 days of windows in the settings."""
    from fsml import registry

    params = registry.client(parcels.settings).get_run(parcels.outcomes[V1].registered.run_id).data.params
    factor = float(params["train_days"]) / TEST_SETTINGS["train_days"]
    assert 0.5 < factor < 0.55 and float(params["test_days"]) == pytest.approx(factor * TEST_SETTINGS["test_days"])


@pytest.mark.parametrize("service", PARCEL_SERVICES)
def test_fast_path_answers_as_fastapi_for_every_model(api: httpx.Client, parcels: Repo, service: str) -> None:
    rows = _body(_rows(parcels, END - pd.Timedelta(days=4), END - pd.Timedelta(days=3)).head(4))
    rows.append({**rows[0], "courier_id": 999_999, "depot_code": "NOWHERE"})  # unknown entities
    for path, body in [
        (f"/v1/models/{service}/predict", rows[0]),
        (f"/v1/models/{service}/predict", {**rows[0], "distance_km": -1}),
        (f"/v1/models/{service}/predict/batch", {"rows": rows}),
    ]:
        fast, routed = api.post(path, json=body), api.post(path + "?include_values=false", json=body)
        assert fast.status_code == routed.status_code and fast.json() == routed.json(), (fast.text, routed.text)


def test_openapi_has_each_models_schema_and_no_fraud_field(api: httpx.Client) -> None:
    schemas = api.get("/openapi.json").json()["components"]["schemas"]
    for name in ("PredictRequest", f"PredictRequest_{V2}"):
        assert set(schemas[name]["required"]) == {"courier_id", "depot_code", "distance_km", "weight_kg"}
        assert {"parcel_id", "dispatched_at"} <= set(schemas[name]["properties"])
    assert "transaction_id" not in json.dumps(schemas)


def test_online_features_equal_offline_ones_for_both_view_modes(api: httpx.Client, parcels: Repo) -> None:
    """The pandas-mode and python-mode views give online what they give in a training set."""
    rows = _rows(parcels, END - pd.Timedelta(days=3, hours=6), END - pd.Timedelta(days=3)).head(40)
    moment = parcels.as_of  # the online store holds the features as of this moment
    body = [{**r, "dispatched_at": moment.isoformat()} for r in _body(rows)]
    online = api.post(f"/v1/models/{V2}/predict/batch?include_values=true", json={"rows": body}).json()
    store = open_store(parcels.settings)
    spec = describe_service(store, V2)
    offline = with_features(store, spec, rows.assign(dispatched_at=moment, event_timestamp=moment))
    offline = offline.set_index("parcel_id").loc[rows["parcel_id"]]
    for prediction, (_, expected) in zip(online["predictions"], offline.iterrows(), strict=True):
        for column in spec.columns:
            got, want = prediction["features"]["values"][column], expected[column]
            if isinstance(got, str) or got is None:
                assert got == want or (got is None and pd.isna(want)), column
            else:
                assert float(got) == pytest.approx(float(want), rel=1e-12), column
    assert {"dispatch_context__queue_per_staff", "parcel_shape__kg_per_km", "courier_load__kg_24h"} <= set(spec.columns)


def test_pushed_dispatches_count_in_the_very_next_prediction(api: httpx.Client, parcels: Repo) -> None:
    """The repo's own push source: dispatches pushed through /v1/push are in v2's courier_load
    windows at the next request, with no sleep, no build and no materialize in between."""
    courier, at = 990_001, parcels.as_of + pd.Timedelta(hours=2)  # a courier with no history
    body = {**_body(_rows(parcels, END - pd.Timedelta(days=4), END - pd.Timedelta(days=3)).head(1))[0],
            "courier_id": courier, "dispatched_at": at.isoformat()}  # fmt: skip

    def load() -> dict[str, Any]:
        reply = api.post(f"/v1/models/{V2}/predict?include_values=true", json=body)
        assert reply.status_code == 200, reply.text
        values = reply.json()["features"]["values"]
        return {k.removeprefix("courier_load__"): v for k, v in values.items() if k.startswith("courier_load__")}

    assert load() == {"parcels_1h": None, "parcels_24h": None, "kg_24h": None}
    rows = [{"parcel_id": 90_000_000 + i, "courier_id": courier, "weight_kg": 2.0 + i,
             "dispatched_at": (at - pd.Timedelta(minutes=50 + 15 * i)).isoformat()} for i in range(3)]  # fmt: skip
    headers = {"X-API-Key": API_KEY}
    assert api.post("/v1/push/dispatches", json={"rows": rows}).status_code == 401
    pushed = api.post("/v1/push/dispatches", json={"rows": rows}, headers=headers)
    assert pushed.json() == {"accepted": 3, "duplicates": 0}
    assert load() == {"parcels_1h": 1, "parcels_24h": 3, "kg_24h": pytest.approx(9.0)}  # one within the hour
    again = api.post("/v1/push/dispatches", json={"rows": rows[:1]}, headers=headers).json()
    assert again == {"accepted": 0, "duplicates": 1} and load()["parcels_24h"] == 3


def test_each_model_is_scored_monitored_and_retrained_on_its_own(api: httpx.Client, parcels: Repo, server) -> None:
    rows = _rows(parcels, END - pd.Timedelta(days=3), END)
    body = _body(rows)
    for service in PARCEL_SERVICES:  # live traffic for both models, logged apart
        for start in range(0, len(body), 200):
            reply = api.post(f"/v1/models/{service}/predict/batch", json={"rows": body[start : start + 200]})
            assert reply.status_code == 200, reply.text
    source = parcels.home.parent / "to_score.parquet"
    rows.to_parquet(source)
    for service in PARCEL_SERVICES:
        target = parcels.home.parent / f"scored_{service}.parquet"
        scored = cli(parcels, "score", "--feature-service", service, "--input", str(source), "--output", str(target))
        assert (scored["rows_scored"], scored["model_name"]) == (len(rows), f"fsml-dev-{service}")
    time.sleep(parcels.settings.log_flush_seconds + 1)
    logs = parcels.home / "logs" / "predictions" / "dev"
    for service in PARCEL_SERVICES:
        logged = duckdb.sql(f"SELECT DISTINCT model_name FROM read_parquet('{logs / service}/**/*.parquet')").fetchall()
        assert logged == [(f"fsml-dev-{service}",)]  # nothing of the other model
    summaries = {
        service: cli(parcels, "monitor", "run", "--feature-service", service, "--as-of", END.isoformat())
        for service in PARCEL_SERVICES
    }
    for service, summary in summaries.items():
        assert summary["model"]["name"] == f"fsml-dev-{service}"
        assert summary["window"]["rows"] >= len(rows) and summary["performance"]["labelled_rows"] > 100
        assert f"/monitoring/dev/{service}/" in summary["report"] and Path(summary["report"]).is_file()
    quiet = {"FSML_RETRAIN_EVERY_DAYS": "0", "FSML_DRIFT_MIN_FEATURES": "1000", "FSML_PERFORMANCE_TOLERANCE": "0.99"}
    watched = cli(parcels, "monitor", "watch", "--feature-service", V1, "--rounds", "1", **quiet)
    assert watched["feature_service"] == V1 and len(watched["rounds"]) == 1
    retrained = cli(
        parcels,
        "retrain",
        "--feature-service",
        V2,
        "--as-of",
        END.isoformat(),
        "--reason",
        "test",
        FSML_SERVICE_URL=server.url,
        FSML_API_KEY=API_KEY,
    )
    assert retrained["started"] and retrained["challenger_version"] != parcels.outcomes[V2].registered.version
    state = parcels.home / "monitoring" / "dev"
    assert "manual: test" in (state / V2 / "triggers.jsonl").read_text()
    assert "manual: test" not in (state / V1 / "triggers.jsonl").read_text()
    assert (state / V1 / "history.jsonl").is_file() and (state / V2 / "history.jsonl").is_file()
    if retrained["promoted"]:  # the service took the new champion of v2, and v1 is untouched
        deadline = time.monotonic() + 30
        while api.get("/readyz").json()["models"][V2] != retrained["champion_version"] and time.monotonic() < deadline:
            time.sleep(0.5)
        assert api.get("/readyz").json()["models"] == {
            V1: parcels.outcomes[V1].registered.version,
            V2: retrained["champion_version"],
        }
    scores = pd.read_parquet(parcels.home.parent / f"scored_{V2}.parquet")["score"].to_numpy()
    assert np.isfinite(scores).all()
