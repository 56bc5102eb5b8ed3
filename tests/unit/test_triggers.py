"""Trigger mechanics: one retraining at a time, cooldown, durations."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fsml.monitoring.triggers import State
from fsml.monitoring.watch import parse_duration

from fsml.errors import FsmlError
from fsml.locks import RetrainBusy, is_locked, retrain_lock
from tests.conftest import make_settings


def test_one_retraining_at_a_time(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    with retrain_lock(settings):
        assert is_locked(settings)
        with pytest.raises(RetrainBusy, match=r"already running \(pid \d+"), retrain_lock(settings):
            pass
    assert not is_locked(settings)


def test_cooldown_follows_the_last_retraining(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, retrain_cooldown_hours=6)
    assert State.load(settings).cooldown_until(settings) is None
    when = datetime(2026, 11, 1, tzinfo=UTC)
    State(when.isoformat(), "drift", "promoted").save(settings)
    assert State.load(settings).cooldown_until(settings) == when + timedelta(hours=6)
    (settings.monitoring_dir / "state.json").write_text("{broken")
    assert State.load(settings) == State()  # an unreadable state does not stop the loop


@pytest.mark.parametrize(("text", "seconds"), [("30s", 30), ("15m", 900), ("1.5h", 5400), ("1d", 86400)])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == seconds


def test_bad_duration_is_named() -> None:
    with pytest.raises(FsmlError, match="'soon' is not a duration"):
        parse_duration("soon")


def _summary(causes: list[str], verdict: str = "measured") -> dict:
    return {
        "as_of": "2026-11-01T00:00:00+00:00",
        "verdict": verdict,
        "causes": causes,
        "data_quality": [{"column": "customer_profile__credit_limit", "breaks": ["null rate 0.0% -> 50.0%"]}]
        if "data_quality" in causes
        else [],
        "evidence": {},
        "report": "r.html",
    }


def test_a_data_quality_incident_holds_automatic_retraining_until_the_data_are_healthy(tmp_path: Path) -> None:
    from fsml.monitoring.retrain import retrain
    from fsml.monitoring.triggers import follow_incident, held

    settings = make_settings(tmp_path)
    follow_incident(settings, _summary(["data_quality", "prediction"]))
    assert "customer_profile__credit_limit" in held(settings)
    outcome = retrain(settings, reason="drift: score", automatic=True)
    assert outcome["started"] is False and outcome["skipped"].startswith("held: data-quality incident")
    follow_incident(settings, _summary([], "insufficient data: 14 h"))  # no verdict: still held
    assert held(settings)
    follow_incident(settings, _summary(["distribution"]))  # measured, no quality break: healthy
    assert held(settings) is None
    events = [json.loads(line) for line in (settings.monitoring_dir / "triggers.jsonl").read_text().splitlines()]
    assert [e.get("status") for e in events if e["event"] == "incident"] == ["opened", "resolved"]
    assert any("held" in e.get("skipped", "") for e in events if e["event"] == "retrain")
