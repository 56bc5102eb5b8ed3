"""A repo made by ``feast init`` (Feast's own template) through the whole loop, as it is.

The template has what fsml must take without being told: relative paths in its config and
sources, a SQLite online store (fsml serves from Redis), nanosecond zoned times, a ``Project``
object, a pandas-mode on-demand view, a push source, a label view, and features of types no
model can use (Map, Json, Struct). The test only adds a label file and the FileSource that
declares it, and runs every command from a directory that is not the repo's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from fsml.serving.process import ServerProcess
from fsml.training.dataset import with_features

from fsml import registry
from fsml.featurestore import describe_service, open_store
from tests.conftest import API_KEY, TEST_SETTINGS, Repo

pytestmark = pytest.mark.e2e

FSML = Path(sys.executable).parent / "fsml"
SERVICE = "driver_activity_v1"


def run(repo: Repo, *args: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("FSML_")}
    environ |= {f"FSML_{k.upper()}": str(v) for k, v in TEST_SETTINGS.items()}
    environ |= {
        "FSML_HOME": str(repo.home),
        "FSML_FEATURE_REPO": str(repo.settings.feature_repo),
        "FSML_FEATURE_SERVICE": SERVICE,
        "REDIS_URL": repo.settings.redis_url,
    }
    cwd = repo.home.parent  # the tmp dir: neither the repo nor the project
    return subprocess.run([str(FSML), *args], env=environ, cwd=cwd, capture_output=True, text=True, timeout=300)


def cli(repo: Repo, *args: str) -> dict[str, Any]:
    done = run(repo, *args, "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "\x1b[" not in done.stdout
    return json.loads(done.stdout.strip().splitlines()[-1])


def _rides(repo: Repo, hours: int) -> pd.DataFrame:
    rides = pd.read_parquet(repo.settings.feature_repo / "data" / "driver_rides.parquet")
    recent = rides[rides["event_timestamp"] >= rides["event_timestamp"].max() - pd.Timedelta(hours=hours)]
    return recent[["ride_id", "driver_id", "val_to_add", "val_to_add_2", "event_timestamp"]]


@pytest.fixture(scope="module")
def server(drivers: Repo):
    with ServerProcess(drivers.settings, extra_env={"FSML_API_KEY": API_KEY}) as process:
        yield process


@pytest.fixture(scope="module")
def api(server) -> httpx.Client:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


def test_the_repo_is_taken_as_it_is(drivers: Repo) -> None:
    applied = cli(drivers, "features", "apply")
    assert applied["project"] == "drivers_dev" and applied["changes"]  # the repo's name, then the environment
    assert (drivers.settings.feature_repo / "data" / "registry.db").is_file()  # its relative registry path
    # the template's Project object names the repo's project: kept, with the environment's suffix
    assert [p.name for p in open_store(drivers.settings).list_projects()] == ["drivers_dev"]
    outcome = drivers.outcomes[SERVICE]
    assert outcome.trained.bundle.card.metrics["test_roc_auc"] > 0.7
    # 15 days of data against windows needing 70 days: they shrank, in proportion
    params = registry.client(drivers.settings).get_run(outcome.registered.run_id).data.params
    shrunk = {k: float(params[k]) / TEST_SETTINGS[k] for k in ("feature_warmup_days", "train_days", "test_days")}
    assert max(shrunk.values()) < 0.25 and max(shrunk.values()) - min(shrunk.values()) < 1e-9
    unusable = run(drivers, "train", "--feature-service", "driver_activity_v2")
    errors = [line for line in unusable.stderr.splitlines() if line.startswith("error:")]
    assert unusable.returncode == 1 and len(errors) == 1, unusable.stderr[-2000:]
    assert "'driver_hourly_stats'" in errors[0] and "'driver_metadata'" in errors[0] and "Map" in errors[0]


def test_pandas_mode_view_gives_online_what_it_gives_offline(api: httpx.Client, drivers: Repo) -> None:
    rides = _rides(drivers, hours=30).head(30)
    at = drivers.as_of
    body = [{**r, "event_timestamp": at.isoformat()} for r in rides.drop(columns="event_timestamp").to_dict("records")]
    online = api.post("/v1/predict/batch?include_values=true", json={"rows": body})
    assert online.status_code == 200, online.text
    store = open_store(drivers.settings)
    spec = describe_service(store, SERVICE)
    offline = with_features(store, spec, rides.assign(event_timestamp=at)).set_index("ride_id").loc[rides["ride_id"]]
    for prediction, (_, row) in zip(online.json()["predictions"], offline.iterrows(), strict=True):
        assert prediction["ride_id"] == row.name and prediction["features"]["missing"] == []
        for column in spec.columns:
            assert prediction["features"]["values"][column] == pytest.approx(float(row[column]), rel=1e-12), column
    fast, routed = (api.post(p, json=body[0]) for p in ("/v1/predict", "/v1/predict?include_values=false"))
    assert fast.status_code == 200 and fast.json() == routed.json()


def test_the_templates_push_source_is_refused_with_the_reason(api: httpx.Client) -> None:
    """The template's ``driver_stats_push_source`` has no ``fsml.id`` tag: fsml cannot count its
    rows once, so it refuses them and says why (Feast's own push still serves that source)."""
    row = {"driver_id": 1001, "conv_rate": 0.5, "acc_rate": 0.5, "avg_daily_trips": 3,
           "event_timestamp": pd.Timestamp.now(tz="UTC").isoformat()}  # fmt: skip
    reply = api.post("/v1/push/driver_stats_push_source", json={"rows": [row]}, headers={"X-API-Key": API_KEY})
    assert reply.status_code == 404 and "'fsml.id'" in reply.text, reply.text


def test_served_scored_monitored_and_retrained(api: httpx.Client, drivers: Repo, server) -> None:
    rides = _rides(drivers, hours=48)
    body = [{**r, "event_timestamp": r["event_timestamp"].isoformat()} for r in rides.to_dict("records")]
    for start in range(0, len(body), 200):
        assert api.post("/v1/predict/batch", json={"rows": body[start : start + 200]}).status_code == 200
    source = drivers.home.parent / "rides.parquet"
    rides.to_parquet(source)  # the repo's own time column, nanosecond and zoned
    scored = cli(drivers, "score", "--input", str(source), "--output", str(drivers.home.parent / "scored.parquet"))
    assert (scored["rows_scored"], scored["rows_rejected"]) == (len(rides), 0)
    time.sleep(drivers.settings.log_flush_seconds + 1)
    now = pd.Timestamp.now(tz="UTC").isoformat()
    monitored = cli(drivers, "monitor", "run", "--as-of", now)
    assert monitored["window"]["rows"] >= len(rides) and monitored["performance"]["labelled_rows"] > 0
    retrained = cli(drivers, "retrain", "--as-of", now, "--reason", "feast init loop")
    assert retrained["started"] and retrained["challenger_version"] != drivers.outcomes[SERVICE].registered.version
    assert "feast init loop" in (drivers.home / "monitoring" / "dev" / SERVICE / "triggers.jsonl").read_text()
