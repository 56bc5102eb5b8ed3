"""Trigger mechanics: one retraining at a time, cooldown, durations."""

from __future__ import annotations

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
