"""A failing on-demand function is named, offline and online; unusable types are named too.

The parcel repo is copied with a bug in its pandas-mode view (a lookup that fails for any parcel
dispatched before yesterday, so Feast's check at apply time, which runs the function on a
sample dispatched now, passes) and registered on its own: the champion trained on the good repo
is then served and queried through the broken definitions, so the failing function is the
user's own, from the registry, not a stand-in.
"""

from __future__ import annotations

import logging
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from fsml.serving.app import create_app
from fsml.training.dataset import label_rows, labelled_features

from fsml.errors import FsmlError, OnDemandFailed
from fsml.featurestore import apply_repo, describe_service, open_store
from tests.conftest import Repo
from tests.repos import PARCEL_SERVICES

pytestmark = pytest.mark.integration

BUG = 'inputs["parcels_in_queue"] / inputs["staff_on_shift"].clip(lower=1)'
FAILS_ON_REAL_DATA = (
    'inputs["dispatched_at"].map(lambda t: 1.0 if t > pd.Timestamp.now(tz="UTC") - pd.Timedelta(days=1) '
    'else {}["no rate for old dispatches"])'
)


@pytest.fixture(scope="module")
def broken(parcels: Repo, tmp_path_factory: pytest.TempPathFactory):
    """The parcel repo with a view that fails on every row, applied in its own registry."""
    repo = tmp_path_factory.mktemp("broken") / "repo"
    shutil.copytree(parcels.settings.feature_repo, repo, ignore=shutil.ignore_patterns("data", "__pycache__"))
    (repo / "data").mkdir()
    for table in (parcels.settings.feature_repo / "data").glob("*.parquet"):
        (repo / "data" / table.name).symlink_to(table)
    source = (repo / "parcels.py").read_text()
    assert BUG in source
    (repo / "parcels.py").write_text(source.replace(BUG, FAILS_ON_REAL_DATA))
    hosted = list(PARCEL_SERVICES)
    settings = parcels.settings.model_copy(
        update={"feature_repo": repo, "reload_poll_seconds": 0, "serve_feature_services": hosted}
    )
    apply_repo(settings)
    return settings


def test_offline_failure_names_the_view(broken, parcels: Repo) -> None:
    store = open_store(broken)
    spec = describe_service(store, PARCEL_SERVICES[0])
    entities = label_rows(spec, parcels.as_of - timedelta(days=2), parcels.as_of, parcels.as_of)
    with pytest.raises(OnDemandFailed, match=r"on-demand feature view 'dispatch_context' failed: KeyError"):
        labelled_features(store, spec, entities)


def test_online_failure_is_a_500_naming_the_view_and_a_log_line(
    broken, parcels: Repo, caplog: pytest.LogCaptureFixture
) -> None:
    body = {
        "parcel_id": 1,
        "courier_id": 101,
        "depot_code": "D01",
        "distance_km": 3.5,
        "weight_kg": 1.0,
        "dispatched_at": parcels.as_of.isoformat(),
    }
    with TestClient(create_app(broken)) as client, caplog.at_level(logging.ERROR):
        assert client.get("/readyz").json()["status"] == "ready"
        for path in ("/v1/predict", "/v1/predict?include_values=true", "/v1/predict/batch"):
            reply = client.post(path, json={"rows": [body]} if path.endswith("batch") else body)
            assert reply.status_code == 500 and reply.headers["content-type"] == "application/json"
            assert "on-demand feature view 'dispatch_context' failed: KeyError" in reply.json()["detail"]
        other = client.post(f"/v1/models/{PARCEL_SERVICES[1]}/predict", json=body)  # v2 reads the view too
        assert other.status_code == 500 and "'dispatch_context'" in other.json()["detail"]
        metrics = client.get("/metrics").text
    assert 'fsml_on_demand_errors_total{model="late_delivery_v1",view="dispatch_context"}' in metrics
    assert any("dispatch_context" in r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)


def test_unusable_types_name_the_view_and_the_feature(drivers: Repo) -> None:
    """Feast's own template declares Map, Json and Struct features."""
    store = open_store(drivers.settings)
    with pytest.raises(FsmlError, match=r"feature view 'driver_hourly_stats': 'driver_metadata' has type Map"):
        describe_service(store, "driver_activity_v2")


def test_a_repo_without_labels_says_how_to_declare_them(parcels: Repo, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(parcels.settings.feature_repo, repo, ignore=shutil.ignore_patterns("data", "__pycache__"))
    source = (repo / "parcels.py").read_text()
    (repo / "parcels.py").write_text(source.replace('"fsml.label": "is_late",', "").replace('"deliveries"}', '""}'))
    settings = parcels.settings.model_copy(update={"feature_repo": repo})
    apply_repo(settings)
    with pytest.raises(FsmlError, match="has no label source: tag it with fsml.label_source"):
        describe_service(open_store(settings), PARCEL_SERVICES[0])
