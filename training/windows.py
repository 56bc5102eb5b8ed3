"""Time windows of a training set, and how they shrink to fit a short labelled history.

The settings give a warm-up, train, validation and test window in days (45, 40, 10 and 10 by
default: 105 days). A repo with less labelled history than that before the as-of time gets the
four shrunk by one factor, so they keep their proportions and exactly cover the history, and
one warning line says what was used. The floor is one day each of validation and test data:
below it there is too little to choose a threshold or judge a model, and training stops with
one error line saying how many days there are, how many are needed and which settings change it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from fsml.errors import FsmlError

log = logging.getLogger(__name__)

SLACK = timedelta(hours=1)  # history this much short of the windows still counts as enough
SETTINGS = "FSML_FEATURE_WARMUP_DAYS, FSML_TRAIN_DAYS, FSML_VALID_DAYS and FSML_TEST_DAYS"


@dataclass(frozen=True)
class Windows:
    """Half-open time windows [start, end) of each split; ``as_of`` bounds label availability."""

    as_of: datetime
    bounds: dict[str, tuple[datetime, datetime]]

    @classmethod
    def ending_at(cls, as_of: datetime, train_days: float, valid_days: float, test_days: float) -> Windows:
        test_start = as_of - timedelta(days=test_days)
        valid_start = test_start - timedelta(days=valid_days)
        train_start = valid_start - timedelta(days=train_days)
        return cls(
            as_of=as_of,
            bounds={
                "train": (train_start, valid_start),
                "valid": (valid_start, test_start),
                "test": (test_start, as_of),
            },
        )

    @property
    def start(self) -> datetime:
        return self.bounds["train"][0]

    def describe(self) -> dict[str, str]:
        out = {"as_of": self.as_of.isoformat()}
        for split, (lo, hi) in self.bounds.items():
            out[f"{split}_start"], out[f"{split}_end"] = lo.isoformat(), hi.isoformat()
        return out


@dataclass(frozen=True)
class WindowDays:
    """Lengths in days of the warm-up and the three splits."""

    warmup: float
    train: float
    valid: float
    test: float

    @property
    def total(self) -> float:
        return self.warmup + self.train + self.valid + self.test

    def scaled(self, factor: float) -> WindowDays:
        return WindowDays(self.warmup * factor, self.train * factor, self.valid * factor, self.test * factor)

    def describe(self) -> str:
        return (
            f"warm-up {self.warmup:.1f} + train {self.train:.1f} + validation {self.valid:.1f} + "
            f"test {self.test:.1f} = {self.total:.1f} days"
        )


def fit_windows(days: WindowDays, first_label: datetime | None, as_of: datetime) -> WindowDays:
    """``days`` if the labelled history from ``first_label`` to ``as_of`` covers them, else the
    same windows shrunk proportionally to the history (one warning line), down to one day each
    of validation and test (one error below it). Without labels before ``as_of``, ``days``."""
    if first_label is None or first_label >= as_of:
        return days
    history = as_of - first_label
    if history + SLACK >= timedelta(days=days.total):
        return days
    available = history / timedelta(days=1)
    floor = 1.0 / min(days.valid, days.test)
    factor = available / days.total
    if factor < floor:
        raise FsmlError(
            f"{available:.1f} days of labelled history before {as_of.isoformat()}, at least "
            f"{days.total * floor:.1f} needed: the windows ({days.describe()}) shrink to fit down to "
            f"one day of validation and of test data; lower {SETTINGS}, or add labelled history"
        )
    fitted = days.scaled(factor)
    log.warning(
        "%.1f days of labelled history before %s, fewer than the %.1f the windows need: shrunk to %s (%s)",
        available,
        as_of.isoformat(),
        days.total,
        fitted.describe(),
        SETTINGS,
    )
    return fitted
