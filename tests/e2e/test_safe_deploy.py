"""Shadow, canary, rollback: a challenger proven on live traffic by a real ``fsml serve`` on a
real Redis, the promotion gate on the rows both models scored, and a champion rolled back in one
command while the service keeps answering."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pyarrow.parquet as pq
import pytest
from fsml.serving.canary import routed
from fsml.serving.materialize import materialize
from fsml.serving.process import ServerProcess, settings_environ
from fsml.training.pipeline import train
from fsml.training.promote import promote
from pydantic import SecretStr

from fsml import registry
from fsml.featurestore import apply_repo
from fsml.redis_server import RedisServer
from fsml.settings import Settings
from tests.conftest import API_KEY, AS_OF, World, make_settings

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

CANARY = 0.5


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory, world: World):
    """The session world's data in a home of its own: a champion, a challenger beside it (other
    parameters), the online store as of AS_OF, and a Redis of its own."""
    root = tmp_path_factory.mktemp("deploy")
    for name in ("raw", "features"):
        version = root / "home" / "data" / f"{name}.versions" / "copy"
        shutil.copytree(world.settings.data_dir / name, version)
        (root / "home" / "data" / name).symlink_to(version.relative_to(root / "home" / "data"))
    shutil.copytree(world.settings.data_dir / "events", root / "home" / "data" / "events")
    redis = RedisServer(root / "redis").start()
    settings = make_settings(root / "home", redis.url, api_key=SecretStr(API_KEY), reload_poll_seconds=0.5)
    try:
        apply_repo(settings)
        champion = train(settings, as_of=AS_OF).registered.version
        assert promote(settings, as_of=AS_OF).promoted
        other = settings.model_copy(update={"num_leaves": 7, "learning_rate": 0.1})
        challenger = train(other, as_of=AS_OF, reason="test: challenger").registered.version
        materialize(settings, end=AS_OF)
        yield settings, champion, challenger
    finally:
        redis.stop()


def _requests(settings: Settings, count: int = 1_500) -> list[dict[str, Any]]:
    """Transactions whose labels matured by AS_OF, sent as if they happened now (fresh features):
    the frauds among them, and the latest others, so the live gate has positives to count."""
    tx = pd.read_parquet(settings.raw_dir / "transactions.parquet")
    tx = tx.merge(pd.read_parquet(settings.raw_dir / "labels.parquet"), on="transaction_id")
    tx = tx[tx["label_available_at"] <= AS_OF]
    frauds = tx[tx["is_fraud"] == 1].tail(count // 10)
    tx = pd.concat([frauds, tx[tx["is_fraud"] == 0].tail(count - len(frauds))]).sort_values("timestamp")
    return [
        {"transaction_id": int(r.transaction_id), "customer_id": int(r.customer_id), "merchant_id": int(r.merchant_id),
         "amount": float(r.amount), "timestamp": AS_OF.isoformat()}
        for r in tx.itertuples()
    ]  # fmt: skip


def _send(url: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    answers = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for start in range(0, len(rows), 100):
            reply = client.post("/v1/predict/batch", json={"rows": rows[start : start + 100]})
            assert reply.status_code == 200, reply.text
            answers += reply.json()["predictions"]
    return answers


def _logged(directory: Path, expected: int) -> pd.DataFrame:
    deadline = time.monotonic() + 30
    while True:
        files = sorted(directory.glob("date=*/hour=*/*.parquet"))
        rows = sum(pq.read_metadata(f).num_rows for f in files)
        if rows >= expected or time.monotonic() > deadline:
            return pd.concat([pd.read_parquet(f) for f in files]) if files else pd.DataFrame()
        time.sleep(0.2)


def _served(url: str, version: str) -> None:
    deadline = time.monotonic() + 30
    while httpx.get(f"{url}/v1/model", timeout=5).json()["version"] != version:
        assert time.monotonic() < deadline, f"the service did not follow the champion alias to v{version}"
        time.sleep(0.2)


def _fsml(settings: Settings, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [str(Path(sys.executable).parent / "fsml"), *args, "--json"],
        env=settings_environ(settings) | {"FSML_HOME": str(settings.home), "FSML_ENV": settings.env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_shadow_canary_live_gate_and_rollback(deployment) -> None:
    settings, champion, challenger = deployment
    rows = _requests(settings)
    env = {"FSML_SHADOW_FRACTION": "1", "FSML_CANARY_FRACTION": str(CANARY)}
    with ServerProcess(settings, extra_env=env) as server:
        answers = _send(server.url, rows)
        by_customer: dict[int, set[str]] = {}
        for row, answer in zip(rows, answers, strict=True):
            expected = challenger if routed(row["customer_id"], CANARY) else champion
            assert answer["model"]["version"] == expected  # deterministic by customer
            by_customer.setdefault(row["customer_id"], set()).add(answer["model"]["version"])
        assert all(len(v) == 1 for v in by_customer.values())  # one customer sees one model
        assert {a["model"]["version"] for a in answers} == {champion, challenger}

        # the challenger's own log: every row, both scores, the route
        paired = _logged(settings.challenger_log_dir, len(rows)).set_index("transaction_id")
        assert len(paired) == len(rows) and set(paired["route"]) == {"shadow", "canary"}
        assert (paired["model_version"] == challenger).all() and (paired["paired_version"] == champion).all()
        served = {str(a["transaction_id"]): a["score"] for a in answers}
        shadow, canary = paired[paired["route"] == "shadow"], paired[paired["route"] == "canary"]
        assert all(abs(served[i] - s) < 1e-12 for i, s in shadow["paired_score"].items())  # the champion answered
        assert all(abs(served[i] - s) < 1e-12 for i, s in canary["score"].items())  # the challenger answered
        main = _logged(settings.prediction_log_dir, len(rows))
        assert set(main["model_version"]) == {champion, challenger}  # the monitor judges the champion's rows only

        # the promotion gate: offline and on the live rows both scored; `fsml promote` shows both
        decision = _fsml(settings.model_copy(update={"promotion_margin": 0.5}), "promote", "--as-of", AS_OF.isoformat())
        live = decision["scores"]["live"]
        assert live["status"] == "measured" and live["rows"] == len(rows), live
        assert {"challenger", "champion"} <= set(live) and live["routes"] == {
            "shadow": len(shadow),
            "canary": len(canary),
        }
        assert decision["promoted"] is False and "offline:" in decision["reason"] and "live (" in decision["reason"]

        # promote by force, then roll back in one command: the running service follows both moves
        assert _fsml(settings, "promote", "--force", "--as-of", AS_OF.isoformat())["champion_version"] == challenger
        _served(server.url, challenger)
        back = _fsml(settings, "rollback", "--reason", "test: back")
        assert back == {
            "model": back["model"],
            "from_version": challenger,
            "to_version": champion,
            "reason": "test: back",
        }
        _served(server.url, champion)
        events = [json.loads(x) for x in (settings.monitoring_dir / "triggers.jsonl").read_text().splitlines()]
        assert any(e["event"] == "rollback" and e["to_version"] == champion for e in events)


@pytest.mark.parametrize(
    ("limit", "crossed"),
    [
        ({"FSML_CANARY_MAX_P99_MS": "0.000001"}, "p99"),  # any real scoring time crosses it
        ({"FSML_CANARY_MAX_SCORE_DISTANCE": "0.000001"}, "scores"),  # another model's scores cross it
    ],
)
def test_a_canary_that_crosses_a_threshold_is_rolled_back_by_itself(
    deployment, limit: dict[str, str], crossed: str
) -> None:
    settings, champion, challenger = deployment
    client = registry.client(settings)
    name = settings.model_name(settings.feature_service)
    client.set_registered_model_alias(name, registry.CHALLENGER, challenger)  # the challenger again
    if client.get_model_version(name, challenger).tags.get(registry.CANARY_ROLLED_BACK):  # an earlier case's
        client.delete_model_version_tag(name, challenger, registry.CANARY_ROLLED_BACK)
    env = {"FSML_CANARY_FRACTION": str(CANARY), "FSML_CANARY_MIN_ROWS": "20", **limit}
    rows = _requests(settings, 600)
    with ServerProcess(settings, extra_env=env) as server:
        first = _send(server.url, rows[:100])
        assert challenger in {a["model"]["version"] for a in first}  # the canary answered some
        deadline = time.monotonic() + 30
        while not client.get_model_version(name, challenger).tags.get(registry.CANARY_ROLLED_BACK):
            assert time.monotonic() < deadline, "the rollback did not reach the registry"
            time.sleep(0.2)
        later = _send(server.url, rows[100:])
        assert {a["model"]["version"] for a in later} == {champion}  # the champion answers everyone
        metrics = httpx.get(server.url + "/metrics", timeout=5).text
        assert 'fsml_canary_rollbacks_total{model="fraud_model_v1"} 1.0' in metrics
    reason = client.get_model_version(name, challenger).tags[registry.CANARY_ROLLED_BACK]
    assert reason.startswith(crossed)
    events = [json.loads(x) for x in (settings.monitoring_dir / "triggers.jsonl").read_text().splitlines()]
    rollback = [e for e in events if e["event"] == "canary"][-1]
    assert rollback["outcome"] == "rolled back" and rollback["challenger_version"] == challenger
    assert rollback["rows"] >= 20 and rollback["p99_ms"] > 0 and rollback["score_distance"] > 0
    refused = promote(settings, version=challenger, as_of=AS_OF)
    assert not refused.promoted and "rolled back during its canary" in refused.reason
