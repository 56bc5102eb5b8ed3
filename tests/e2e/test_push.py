"""The push API against a real server process and a real Redis: visibility at the next request,
idempotence, all-or-nothing validation, keys, metrics, and one server-level check of the window
values against the offline point-in-time join."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pandas as pd
import pytest
from fsml.features.build import build_features
from fsml.features.eventlog import EventLog
from fsml.serving.process import ServerProcess

from fsml.featurestore import open_store
from fsml.redis_server import RedisCluster, RedisServer
from fsml.stores.redis import sync_client
from tests.conftest import API_KEY, AS_OF, Champion, live_settings

pytestmark = pytest.mark.e2e

PUSH_KEY = "test-push-key"
CUSTOMER = 4_000_001  # unknown to the generator: its windows hold only what the tests push
W = "customer_transaction_windows__"


@pytest.fixture(scope="module", params=["redis", pytest.param("redis_cluster", marks=pytest.mark.redis_cluster)])
def live(
    champion: Champion, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[tuple]:
    """A server on one Redis, then on a 3-master Redis Cluster of its own (every test runs on both)."""
    from pydantic import SecretStr

    root = tmp_path_factory.mktemp("live")
    online = RedisServer(root / "redis", persist=True) if request.param == "redis" else RedisCluster(root / "cluster")
    with online as server:
        settings = live_settings(
            champion, root / "home", server.url, push_api_key=SecretStr(PUSH_KEY), redis_type=request.param
        )
        limits = {"FSML_PUSH_MAX_ROWS": "100", "FSML_MAX_BODY_BYTES": "65536"}
        with (
            ServerProcess(settings, extra_env=limits) as api,
            httpx.Client(base_url=api.url, timeout=10, headers={"X-API-Key": PUSH_KEY}) as client,
        ):
            yield settings, client, server


def _tx(i: int, minutes: float, customer: int = CUSTOMER, amount: float = 10.0) -> dict:
    moment = AS_OF + timedelta(minutes=minutes)
    return {"transaction_id": 7_000_000_000 + i, "customer_id": customer, "merchant_id": 3, "amount": amount,
            "timestamp": moment.isoformat()}  # fmt: skip


def _windows(client: httpx.Client, minutes: float, customer: int = CUSTOMER) -> dict:
    body = {"customer_id": customer, "merchant_id": 3, "amount": 5.0,
            "timestamp": (AS_OF + timedelta(minutes=minutes)).isoformat()}  # fmt: skip
    reply = client.post("/v1/predict?include_values=true", json=body)
    assert reply.status_code == 200, reply.text
    return {k.removeprefix(W): v for k, v in reply.json()["features"]["values"].items() if k.startswith(W)}


def test_a_push_is_in_the_very_next_prediction(live) -> None:
    _, client, _ = live
    assert _windows(client, 30)["txn_count_1h"] is None  # no history: missing
    for i in range(5):  # never sleeping between the answer and the next request
        reply = client.post("/v1/push/transactions", json={"rows": [_tx(i, i)]})
        assert reply.json() == {"accepted": 1, "duplicates": 0}
        assert _windows(client, 30)["txn_count_1h"] == i + 1
    scored = client.post("/v1/predict", json={**_tx(99, 40), "record": True}).json()
    assert scored["recorded"] == {"accepted": 1, "duplicates": 0}
    assert _windows(client, 41)["txn_count_1h"] == 6
    assert _windows(client, 100)["txn_count_1h"] == 1  # 60 minutes on: only the recorded one is left
    assert _windows(client, 24 * 60 + 41)["txn_count_24h"] == 0


def test_the_same_rows_count_once(live) -> None:
    _, client, _ = live
    rows = [_tx(100 + i, 200 + i, customer=CUSTOMER + 1) for i in range(3)]
    assert client.post("/v1/push/transactions", json={"rows": rows}).json() == {"accepted": 3, "duplicates": 0}
    again = client.post("/v1/push/transactions", json={"rows": [*rows, rows[0], _tx(103, 204, CUSTOMER + 1)]})
    assert again.json() == {"accepted": 1, "duplicates": 4}
    assert _windows(client, 210, CUSTOMER + 1)["txn_count_1h"] == 4


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"amount": -1.0}, "amount"),
        ({"amount": "12"}, "amount"),
        ({"customer_id": 1.5}, "customer_id"),
        ({"timestamp": "1999-12-31T23:00:00+00:00"}, "timestamp"),
        ({"timestamp": "2999-01-01T00:00:00+00:00"}, "timestamp"),
        ({"timestamp": "yesterday"}, "timestamp"),
        ({"merchant_id": None}, "merchant_id"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_a_bad_row_refuses_the_request_and_writes_nothing(live, change: dict, field: str) -> None:
    settings, client, _ = live
    rows = [_tx(300, 300), {**_tx(301, 301), **change}]
    reply = client.post("/v1/push/transactions", json={"rows": rows})
    assert reply.status_code == 422, reply.text
    assert any(d["loc"] == ["body", "rows", 1, field] for d in reply.json()["detail"]), reply.text
    key = f"fsml:{settings.feast_project}:push:transactions:seen"
    seen = sync_client(settings.redis_url, settings.redis_type).hexists(key, "7000000300")
    assert not seen and not any("7000000300" in str(f) for f in _files(settings))


def test_a_non_finite_number_is_refused(live) -> None:
    _, client, _ = live
    body = b'{"rows": [{"transaction_id": 7000000302, "customer_id": 1, "merchant_id": 3, "amount": 1e999, ' \
        b'"timestamp": "2026-11-01T00:00:00+00:00"}]}'  # fmt: skip
    reply = client.post("/v1/push/transactions", content=body, headers={"content-type": "application/json"})
    assert reply.status_code == 422 and "infinity" in reply.text


def _files(settings) -> list[Path]:  # noqa: ANN001
    log = EventLog(settings.data_dir / "events" / "transactions")
    return [*log.files(), *log.pending_dir.glob("*.pending")]


def test_appending_never_rewrites_history(live) -> None:
    """Pushed rows land in date partitions as new files: a late row for a day already holding
    files, and a row for a new day, leave every earlier file byte for byte as it was."""
    import hashlib

    settings, client, _ = live
    log = EventLog(settings.data_dir / "events" / "transactions")
    client.post("/v1/push/transactions", json={"rows": [_tx(900, -3 * 24 * 60)]})
    before = {f: hashlib.sha256(f.read_bytes()).hexdigest() for f in log.files()}
    late, new_day = _tx(901, -3 * 24 * 60 + 5), _tx(902, 9 * 24 * 60)
    assert client.post("/v1/push/transactions", json={"rows": [late, new_day]}).json()["accepted"] == 2
    after = log.files()
    assert {f: hashlib.sha256(f.read_bytes()).hexdigest() for f in before} == before
    added = sorted(set(after) - set(before))
    days = {(AS_OF + timedelta(minutes=m)).date().isoformat() for m in (-3 * 24 * 60 + 5, 9 * 24 * 60)}
    assert len(added) == 2 and {f.parent.name for f in added} == {f"date={d}" for d in days}
    assert any(f.parent == added[0].parent or f.parent == added[1].parent for f in before)  # a day with files


def test_limits_and_unknown_sources(live) -> None:
    _, client, _ = live
    assert client.post("/v1/push/nope", json={"rows": [_tx(1, 1)]}).status_code == 404
    many = client.post("/v1/push/transactions", json={"rows": [_tx(i, i) for i in range(101)]})
    assert many.status_code == 413 and "FSML_PUSH_MAX_ROWS" in many.text
    big = client.post("/v1/push/transactions", content=b"x" * 70_000, headers={"content-type": "application/json"})
    assert big.status_code == 413 and "FSML_MAX_BODY_BYTES" in big.text
    assert client.post("/v1/push/transactions", content=b"{nope").status_code == 422
    assert client.post("/v1/push/transactions", json={"rows": []}).status_code == 422


def test_push_needs_a_key(live) -> None:
    _, client, _ = live
    body = {"rows": [_tx(500, 500)]}
    for headers in ({}, {"X-API-Key": "wrong"}, {"X-API-Key": ""}):
        reply = httpx.post(f"{client.base_url}/v1/push/transactions", json=body, headers=headers)
        assert reply.status_code == 401, headers
    record = {**_tx(501, 501), "record": True}
    assert httpx.post(f"{client.base_url}/v1/predict", json=record).status_code == 401
    assert httpx.post(f"{client.base_url}/v1/predict?include_values=false", json=record).status_code == 401
    admin = httpx.post(f"{client.base_url}/v1/push/transactions", json=body, headers={"X-API-Key": API_KEY})
    assert admin.json() == {"accepted": 1, "duplicates": 0}


def test_push_metrics(live) -> None:
    _, client, _ = live
    client.post("/v1/push/transactions", json={"rows": [_tx(600, 600)]})
    client.post("/v1/push/transactions", json={"rows": [_tx(600, 600)]})
    client.post("/v1/push/transactions", json={"rows": [{**_tx(601, 601), "amount": -3}]})
    text = client.get("/metrics").text
    for name in ("fsml_pushed_rows_total", "fsml_push_duplicates_total", "fsml_push_rejected_rows_total",
                 "fsml_push_latency_seconds_bucket", "fsml_push_newest_event_age_seconds",
                 "fsml_push_newest_event_timestamp_seconds"):  # fmt: skip
        assert f'{name}{{source="transactions"}}' in text or f"{name}{{le=" in text or f"{name}{{" in text, name
    assert 'route="/v1/push"' in text


def test_online_values_equal_the_offline_join_after_a_build(live) -> None:
    """The server-level check: what /v1/predict computed from pushed events is what the built
    change-point rows give through the point-in-time join, at several instants."""
    settings, client, _ = live
    customer = CUSTOMER + 7
    rows = [_tx(800 + i, 17 * i, customer=customer, amount=3.0 + i) for i in range(12)]
    client.post("/v1/push/transactions", json={"rows": rows})
    instants = [5, 17 * 4, 17 * 4 + 1, 60 + 17 * 3, 24 * 60 + 2, 24 * 60 + 17 * 11 + 1, 8 * 24 * 60]
    online = {m: _windows(client, m, customer) for m in instants}
    build_features(settings, until=AS_OF)
    store = open_store(settings)
    moments = pd.Series([AS_OF + timedelta(minutes=m) for m in instants]).astype("datetime64[us, UTC]")
    entities = pd.DataFrame({"customer_id": customer, "event_timestamp": moments, "m": instants})
    names = list(online[instants[0]])
    refs = [f"customer_transaction_windows:{n}" for n in names]
    offline = store.get_historical_features(entity_df=entities, features=refs).to_df().set_index("m")
    for m in instants:
        row = offline.loc[m]
        for name in names:
            want, got = row[name], online[m][name]
            assert (pd.isna(want) and got is None) or got == pytest.approx(float(want), rel=1e-9), (m, name, got, want)


def test_the_demos_walk_shows_windows_moving_and_falling_back(live) -> None:
    """What `make demo` prints: counts rise with the pushes and the recorded prediction, then fall
    back as time passes, with no job run in between."""
    from fsml.examples.fraud.live import walk

    settings, client, _ = live
    steps = walk(settings, str(client.base_url), AS_OF)
    counts = [(s["txn_count_1h"], s["txn_count_24h"], s["txn_count_7d"]) for s in steps]
    assert counts == [(None, None, None), (3, 3, 3), (4, 4, 4), (1, 4, 4), (0, 0, 4), (0, 0, 0)]
    assert steps[1]["recorded"] == {"accepted": 1, "duplicates": 0}
