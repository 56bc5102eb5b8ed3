"""Verdicts name their causes, and each cause its action."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
from fsml.monitoring.causes import insufficient, judge, span_hours
from fsml.monitoring.drift import Thresholds, numeric_drift

from fsml.profiles import numeric_profile

RNG = np.random.default_rng(5)
REFERENCE = numeric_profile(RNG.normal(100, 10, 50_000))
LIMITS = Thresholds()


def _column(values: np.ndarray):
    return numeric_drift("x", REFERENCE, values, LIMITS)


def _verdict(columns, score=None, tail=None, performance=None, segments=None):
    score = score or _column(RNG.normal(100, 10, 5_000))
    return judge(None, columns, score, tail or {}, performance or {}, segments or {}, 1)


def test_each_cause_and_its_action() -> None:
    healthy = _column(RNG.normal(100, 10, 5_000))
    moved = _column(RNG.normal(106, 10, 5_000))
    broken = _column(RNG.normal(100, 10, 5_000) * 100)
    assert (_verdict([healthy]).causes, _verdict([healthy]).action) == ([], "none")
    assert (_verdict([moved]).causes, _verdict([moved]).action) == (["distribution"], "retrain")
    assert (_verdict([broken, moved]).causes, _verdict([broken, moved]).action) == (
        ["data_quality", "distribution"],
        "incident",
    )
    tail = {"reasons": ["decision rate 1.00% -> 0.20%"]}
    assert _verdict([healthy], tail=tail).causes == ["prediction"]
    degraded = {"degraded": True, "pr_auc": 0.1, "floor": 0.4}
    verdict = _verdict([healthy], performance=degraded)
    assert verdict.causes == ["concept"] and verdict.action == "retrain"
    assert "below the floor" in verdict.evidence["concept"][0]
    assert _verdict([healthy], segments={"drifted": ["category=fuel"]}).evidence["distribution"] == [
        "segment category=fuel"
    ]


def _window(hours: float, rows: int) -> pd.DataFrame:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    times = [start + timedelta(hours=hours * i / max(rows - 1, 1)) for i in range(rows)]
    return pd.DataFrame({"event_timestamp": pd.to_datetime(times, utc=True)})


def test_a_window_shorter_than_a_day_or_with_few_rows_gives_no_verdict() -> None:
    assert span_hours(_window(13.5, 100)["event_timestamp"]) == 14
    assert "less than a daily cycle" in insufficient(_window(13.5, 2_000), 1_000, 24)
    assert "rows" in insufficient(_window(30, 500), 1_000, 24)
    assert insufficient(_window(23.9, 2_000), 1_000, 24) is None  # 00:00 to 23:54: every hour seen
    verdict = judge("insufficient data: 14 h", [_column(RNG.normal(100, 10, 50) * 100)], None, {}, {}, {}, 1)
    assert verdict.causes == [] and verdict.action == "none"
