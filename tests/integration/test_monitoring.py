"""The monitor and the retraining loop on real stores: reports, bad input, crashes, the watcher."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from fsml.monitoring.current import logged_window
from fsml.monitoring.monitor import run_monitor
from fsml.monitoring.retrain import retrain
from fsml.monitoring.triggers import State
from fsml.monitoring.watch import watch
from fsml.serving.predlog import PredictionLog

from fsml import registry
from fsml.errors import FsmlError
from fsml.locks import is_locked
from tests.conftest import AS_OF, Champion, World

pytestmark = pytest.mark.integration


def _champion_version(settings) -> str:
    client = registry.client(settings)
    return str(client.get_model_version_by_alias(settings.model_name(settings.feature_service), "champion").version)


def test_offline_monitor_writes_a_report_and_a_summary(champion: Champion) -> None:
    summary = run_monitor(champion.settings, as_of=AS_OF, source="offline")
    assert summary["window"]["source"] == "offline store" and summary["window"]["rows"] > 1000
    assert {f["column"] for f in summary["features"]} == set(champion.outcome.trained.bundle.card.columns)
    assert summary["action"] in {"none", "retrain", "incident"}
    assert set(summary["causes"]) <= {"data_quality", "distribution", "prediction", "concept"}
    assert summary["performance"]["status"] in {"measured", "waiting for labels"}
    estimated = summary["performance"]["estimated"]
    assert estimated["status"] == "estimated" and estimated["pr_auc"]["low"] <= estimated["pr_auc"]["high"]
    assert {m["name"] for m in summary["score_tail"]["measures"]} >= {"decision rate"}
    assert "merchant_profile__category" in summary["segments"]["columns"]
    html = Path(summary["report"]).read_text()
    assert "Drift report" in html and "Prediction drift" in html and html.count("data:image/png") >= 1
    history = (champion.settings.monitoring_dir / "history.jsonl").read_text().splitlines()
    assert json.loads(history[-1])["report"] == summary["report"]


def _write_log(directory: Path, champion: Champion, rows: int = 200) -> None:
    frame = champion.outcome.training_set.parts["test"].head(rows)
    card = champion.outcome.trained.bundle.card
    log = PredictionLog(directory, {f.column: f.dtype for f in card.features}, {"customer_id": "int"}, "transaction_id")
    for row in frame.to_dict("records"):
        log.append(
            row["event_timestamp"].to_pydatetime(),
            {"transaction_id": row["transaction_id"], "customer_id": row["customer_id"]},
            row,
            [],
            [],
            0.01,
            card.model_name,
            "1",
        )
    log.close()


def test_no_current_data_is_a_clear_error(champion: Champion, tmp_path: Path) -> None:
    settings = champion.settings.model_copy(update={"home": tmp_path})
    with pytest.raises(FsmlError, match="no logged predictions in .* serve or replay traffic first"):
        logged_window(settings.prediction_log_dir, AS_OF, 7)


def test_corrupted_log_files_are_left_out_and_named(champion: Champion, tmp_path: Path) -> None:
    _write_log(tmp_path, champion)
    hour = next(p for p in tmp_path.glob("date=*/hour=*"))
    broken = hour / "part-broken.parquet"
    broken.write_bytes(b"PAR1 this is not a parquet file")
    window = logged_window(tmp_path, AS_OF, 30)
    assert window.skipped == [str(broken)] and len(window.frame) == 200
    for path in tmp_path.rglob("*.parquet"):
        path.write_bytes(b"garbage")
    with pytest.raises(FsmlError, match="no readable prediction log files"):
        logged_window(tmp_path, AS_OF, 30)


def test_the_model_card_keeps_what_the_monitor_compares_with(champion: Champion) -> None:
    card = champion.outcome.trained.bundle.card
    assert card.calibration["method"] == "isotonic" and card.calibration["positives"]["score"]
    assert 0 < card.score_tail["decision_rate"] < 0.2 and card.score_tail["tail_level"] == 0.99
    segments = card.segments["merchant_profile__category"]["values"]
    assert segments and all(
        v["rows"] >= card.segments["merchant_profile__category"]["min_rows"] for v in segments.values()
    )
    profiled = set(next(iter(segments.values()))["reference"])
    assert "transaction_context__txn_amount" in profiled
    assert not any(c.startswith(("merchant_risk__", "merchant_profile__")) for c in profiled)  # the segment's entity


def test_a_manual_retraining_during_an_incident_runs_with_a_warning(champion: Champion, tmp_path: Path) -> None:
    from fsml.monitoring.triggers import follow_incident

    settings = champion.settings.model_copy(update={"home": tmp_path})
    follow_incident(
        settings,
        {"as_of": AS_OF.isoformat(), "causes": ["data_quality"], "data_quality": [{"column": "c", "breaks": []}]},
    )
    with pytest.raises(FsmlError, match="retraining failed"):  # it ran: a window with no data stops it
        retrain(settings, reason="manual: test", as_of=AS_OF - timedelta(days=400))
    events = [json.loads(line) for line in (settings.monitoring_dir / "triggers.jsonl").read_text().splitlines()]
    assert any("data-quality incident open" in e.get("warning", "") for e in events)
    assert any(e.get("outcome") == "failed" for e in events)


def test_missing_reference_is_a_clear_error(own_world: World) -> None:
    with pytest.raises(FsmlError, match="train a model first"):
        run_monitor(own_world.settings, as_of=AS_OF, source="offline")


def test_a_crash_inside_retraining_promotes_nothing(champion: Champion) -> None:
    settings = champion.settings
    before = _champion_version(settings)
    with pytest.raises(FsmlError, match="retraining failed, nothing was promoted: .*empty time window"):
        retrain(settings, reason="test: crash", as_of=AS_OF - timedelta(days=400))
    assert not is_locked(settings)
    assert State.load(settings).last_outcome.startswith("failed")
    assert _champion_version(settings) == before
    log = (settings.monitoring_dir / "triggers.jsonl").read_text()
    assert '"outcome": "failed"' in log and "test: crash" in log


def test_the_watcher_survives_failing_rounds(champion: Champion, tmp_path: Path) -> None:
    # Logs from the champion's period, then rounds whose retraining cannot succeed (no labels
    # after the data's end): every round is recorded, none stops the loop or promotes anything.
    settings = champion.settings.model_copy(update={"retrain_cooldown_hours": 0.0})
    shutil.rmtree(settings.prediction_log_dir, ignore_errors=True)
    _write_log(settings.prediction_log_dir, champion)
    before = _champion_version(settings)
    rounds = watch(settings, timedelta(seconds=0), rounds=2, sleep=lambda _: None)
    assert len(rounds) == 2 and all("error" in r for r in rounds)
    assert _champion_version(settings) == before
    events = [json.loads(line) for line in (settings.monitoring_dir / "triggers.jsonl").read_text().splitlines()]
    assert sum(1 for e in events if e.get("event") == "watch" and "error" in e) >= 2
    assert any("schedule:" in e.get("reason", "") for e in events if e.get("event") == "retrain")


def test_cooldown_stops_automatic_storms(champion: Champion) -> None:
    settings = champion.settings.model_copy(update={"retrain_cooldown_hours": 6.0})
    State(datetime.now(UTC).isoformat(), "drift", "promoted").save(settings)
    outcome = retrain(settings, reason="drift: again", automatic=True)
    assert outcome["started"] is False and outcome["skipped"].startswith("cooldown until")
    pd.Timestamp(outcome["skipped"].removeprefix("cooldown until "))  # a real time
