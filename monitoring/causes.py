"""Why the monitor acts: the causes behind a verdict, and the action each calls for.

- ``data_quality``: a column broke as pipelines break (null-rate jump, values out of range or not
  numbers, a unit change, a feature stuck at one value). Retraining would teach the next model
  the break, so the action is an ``incident``: automatic retraining is held until a later
  monitor run finds the data healthy (``fsml.monitoring.triggers``).
- ``distribution``: features drifted without a quality break, overall or within a segment.
- ``prediction``: the champion's scores moved: their distribution, the decision rate or the
  upper tail.
- ``concept``: matured labels show the champion below its performance floor.

The other causes retrain. A window that is too short to judge gives no verdict and no action:
features follow the daily cycle (a 24-hour count at 9 am is not one at 9 pm), so a window shorter
than ``FSML_MONITOR_MIN_HOURS`` (a full day by default) or with fewer rows than
``FSML_MONITOR_MIN_ROWS`` answers "insufficient data". Comparing the few hours seen with the
matching hours of the reference was the other way; it needs a reference per hour of day for
every feature, and a window of a few hours of one day still would not show a day's drift.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from fsml.monitoring.drift import ColumnDrift

CAUSES = ("data_quality", "distribution", "prediction", "concept")


@dataclass
class Verdict:
    status: str  # "measured", or "insufficient data: <why>"
    causes: list[str] = field(default_factory=list)
    evidence: dict[str, list[str]] = field(default_factory=dict)  # per cause, what showed it

    @property
    def action(self) -> str:
        if "data_quality" in self.causes:
            return "incident"
        return "retrain" if self.causes else "none"


def span_hours(times: pd.Series) -> int:
    """Hours of the day the window spans, counted by whole hours from its first to its last row."""
    if times.empty:
        return 0
    hours = pd.to_datetime(times, utc=True).dt.floor("h")
    return int((hours.max() - hours.min()) / pd.Timedelta(hours=1)) + 1


def insufficient(frame: pd.DataFrame, min_rows: int, min_hours: float) -> str | None:
    """Why the window cannot be judged, or None."""
    if len(frame) < min_rows:
        return f"insufficient data: {len(frame):,} rows (< FSML_MONITOR_MIN_ROWS={min_rows:,})"
    hours = span_hours(frame["event_timestamp"]) if "event_timestamp" in frame else 0
    if hours < min_hours:
        return (
            f"insufficient data: the window spans {hours} h of traffic, less than a daily cycle "
            f"(FSML_MONITOR_MIN_HOURS={min_hours:g})"
        )
    return None


def distribution_drifted(columns: list[ColumnDrift]) -> list[str]:
    """Columns that drifted for reasons other than a data-quality break."""
    return [c.column for c in columns if c.drifted and not c.quality]


def judge(
    why_not: str | None,
    columns: list[ColumnDrift],
    score: ColumnDrift,
    tail: dict[str, Any],
    performance: dict[str, Any],
    segments: dict[str, Any],
    min_features: int,
) -> Verdict:
    if why_not:
        return Verdict(why_not)
    evidence: dict[str, list[str]] = {}
    broken = [f"{c.column}: {'; '.join(c.quality)}" for c in columns if c.quality]
    if broken:
        evidence["data_quality"] = broken
    moved = distribution_drifted(columns)
    shown = [f"{c}" for c in moved] if len(moved) >= min_features else []
    shown += [f"segment {s}" for s in segments.get("drifted", [])]
    if shown:
        evidence["distribution"] = shown
    scores = ([f"score: {'; '.join(score.reasons)}"] if score.drifted else []) + tail.get("reasons", [])
    if scores:
        evidence["prediction"] = scores
    if performance.get("degraded"):
        line = f"PR-AUC {performance['pr_auc']:.3f} on matured labels, below the floor {performance['floor']:.3f}"
        band = performance.get("estimate_vs_realized", {}).get("pr_auc")
        below = f" and the estimate's band [{band['low']:.3f}, {band['high']:.3f}] for these rows" if band else ""
        evidence["concept"] = [line + below]
    return Verdict("measured", [c for c in CAUSES if c in evidence], evidence)


def finite(value: Any) -> Any:
    """NaN and infinities as None, so the summary is strict JSON."""
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
