"""The monitor names the cause of what it sees, on traffic replayed as live traffic through a real
``fsml serve`` on a real Redis, for scenarios the generator makes (``fsml.examples.fraud.scenarios``):

| scenario | expected verdict |
| --- | --- |
| drift-free control, 14 hours, 1 day and 7 days, three seeds | insufficient data, then healthy: never retrain |
| half of ``credit_limit`` null; ``age`` stuck at one value; amounts x100 | data quality: incident, retraining held |
| merchant-mix shift | distribution drift, retrain; CBPE estimate within its band of the realised figures |
| labels permuted | concept drift, retrain |
| amounts x2 at one merchant category | distribution drift visible in that segment only |
| the fraud stops | prediction drift in the tail only |

``pytest -s`` prints the scenario table (verdict, causes, action) as the run found it.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from fsml.examples.fraud import scenarios
from fsml.monitoring.watch import run_once
from pydantic import SecretStr

from fsml.redis_server import RedisServer
from tests.conftest import API_KEY, make_settings
from tests.e2e.scenario_world import END, SINCE, WINDOWS, Service

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]  # the worlds are built once, in the first test

SEED = 1  # the scenario world; the controls also run on two more seeds
CONTROL_SEEDS = (2, 3)
AGES = {"14 hours": 14, "1 day": 24, "7 days": 168}
THINNED = ("grocery", "restaurant", "fuel", "retail")  # the merchant-mix shift thins these out
SEGMENT = "online_services"  # amounts doubled at these merchants only


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("scenarios")
    redis = RedisServer(root / "redis").start()
    settings = make_settings(root / "home", redis.url, api_key=SecretStr(API_KEY), reload_poll_seconds=0.5, **WINDOWS)
    try:
        world = Service(settings, root / "logs")
        world.use_world(SEED)
        yield world
    finally:
        redis.stop()


@pytest.fixture(scope="module")
def results(service: Service) -> dict[str, dict[str, Any]]:
    """Every scenario once, in an order that also opens and closes a data-quality incident."""
    out: dict[str, dict[str, Any]] = {}
    clean = service.data
    tx = clean.transactions

    def run(name: str, days: int, data=None, edit=None, hours: float = 168) -> Path:
        logs = service.scenario(name, days, data, edit)
        out[name] = service.monitor(logs, min(hours, days * 24))
        return logs

    control = run("control", 7)
    for age, hours in AGES.items():
        out[f"control, {age}, seed {SEED}"] = service.monitor(control, hours)
    null = ("customer_profile", lambda t: scenarios.null_column(t, "credit_limit", SINCE))
    run("credit_limit half null", 1, edit=null)
    out["watch during the null column"] = _watch_round(service, "credit_limit half null")
    run("age stuck at 42", 1, edit=("customer_profile", lambda t: scenarios.stuck_value(t, "age", SINCE, 42)))
    run("amounts x100 (unit change)", 1, replace(clean, transactions=scenarios.unit_change(tx, SINCE)))
    run("merchant-mix shift", 7, scenarios.merchant_mix_shift(clean, SINCE, THINNED, keep=0.3))
    run("labels permuted", 3, replace(clean, transactions=scenarios.permuted_labels(tx, SINCE)))
    run(f"amounts x2 at {SEGMENT} only", 7, scenarios.segment_drift(clean, SINCE, SEGMENT, 2.0))
    run("the fraud stops (tail only)", 7, replace(clean, transactions=scenarios.fraud_stops(tx, SINCE)))
    for seed in CONTROL_SEEDS:
        service.use_world(seed)
        logs = service.scenario("control", 7)
        for age, hours in AGES.items():
            out[f"control, {age}, seed {seed}"] = service.monitor(logs, hours)
    print("\n" + table(out))
    return out


def _watch_round(service: Service, name: str) -> dict[str, Any]:
    """A watcher round on a live log with the null column: it reads the log in place."""
    kept = service.logs / f"{name}-seed{service.seed}"
    kept.rename(service.settings.prediction_log_dir)
    try:
        return run_once(service.settings, now=END)
    finally:
        service.settings.prediction_log_dir.rename(kept)


def table(out: dict[str, dict[str, Any]]) -> str:
    lines = ["| scenario | rows | verdict | causes | action |", "| --- | --- | --- | --- | --- |"]
    for name, summary in out.items():
        if "verdict" not in summary:
            continue
        verdict = summary["verdict"].split(":")[0]
        causes = ", ".join(summary["causes"]) or "none"
        lines.append(f"| {name} | {summary['window']['rows']:,} | {verdict} | {causes} | {summary['action']} |")
    return "\n".join(lines)


@pytest.mark.parametrize("seed", [SEED, *CONTROL_SEEDS])
def test_drift_free_traffic_never_retrains_at_any_window_age(results: dict, seed: int) -> None:
    short, day, week = (results[f"control, {age}, seed {seed}"] for age in AGES)
    assert short["verdict"].startswith("insufficient data") and short["action"] == "none"
    for summary in (day, week):
        assert summary["verdict"] == "measured" and summary["causes"] == [], summary["evidence"]
        assert summary["action"] == "none" and not summary["score_tail"]["flagged"]


@pytest.mark.parametrize(
    ("scenario", "column", "check"),
    [
        ("credit_limit half null", "customer_profile__credit_limit", "null rate"),
        ("age stuck at 42", "customer_profile__age", "stuck"),
        ("amounts x100 (unit change)", "transaction_context__txn_amount", "unit change"),
    ],
)
def test_data_quality_breaks_raise_an_incident(results: dict, scenario: str, column: str, check: str) -> None:
    summary = results[scenario]
    assert summary["causes"][0] == "data_quality" and summary["action"] == "incident"
    breaks = {b["column"]: " ".join(b["breaks"]) for b in summary["data_quality"]}
    assert check in breaks[column], breaks


def test_an_incident_holds_automatic_retraining_until_the_data_are_healthy(service: Service, results: dict) -> None:
    held = results["watch during the null column"]
    assert held["monitor_action"] == "incident"
    assert held["retrain"]["started"] is False and held["retrain"]["skipped"].startswith("held: data-quality")
    events = [
        json.loads(line) for line in (service.settings.monitoring_dir / "triggers.jsonl").read_text().splitlines()
    ]
    incidents = [(e["status"], e.get("reason", "")) for e in events if e["event"] == "incident"]
    assert incidents[0][0] == "opened" and "credit_limit" in incidents[0][1]
    assert ("resolved", incidents[0][1]) in incidents  # the merchant-mix shift is healthy data


def test_a_merchant_mix_shift_is_distribution_drift_and_the_estimate_holds(results: dict) -> None:
    summary = results["merchant-mix shift"]
    assert summary["causes"] == ["distribution"] and summary["action"] == "retrain"
    assert "merchant_profile__category" in summary["drifted_features"]
    performance = summary["performance"]
    assert performance["status"] == "measured" and performance["estimated"]["status"] == "estimated"
    for figure, row in performance["estimate_vs_realized"].items():
        assert row["within_band"], (figure, row)


def test_permuted_labels_are_concept_drift(results: dict) -> None:
    summary = results["labels permuted"]
    assert summary["causes"] == ["concept"] and summary["action"] == "retrain"
    assert summary["performance"]["below_estimate"] and summary["performance"]["below_floor"]


def test_a_drift_confined_to_one_segment_is_seen_in_that_segment(results: dict) -> None:
    summary = results[f"amounts x2 at {SEGMENT} only"]
    assert summary["drifted_features"] == []  # the whole does not show it
    assert summary["segments"]["drifted"] == [f"merchant_profile__category={SEGMENT}"]
    assert summary["causes"] == ["distribution"]
    view = next(
        s for s in summary["segments"]["columns"]["merchant_profile__category"]["segments"] if s["segment"] == SEGMENT
    )
    assert "transaction_context__txn_amount" in view["drifted_features"]
    assert Path(summary["report"]).read_text().count(SEGMENT) >= 2


def test_a_change_in_the_tail_alone_is_prediction_drift(results: dict) -> None:
    summary = results["the fraud stops (tail only)"]
    assert summary["causes"] == ["prediction"] and summary["drifted_features"] == []
    assert not summary["score_drift"]["drifted"] and summary["score_tail"]["flagged"]
