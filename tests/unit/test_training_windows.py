"""Windows that fit the data: proportional shrink, a floor, one line either way."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from fsml.training.windows import WindowDays, Windows, fit_windows

from fsml.errors import FsmlError

AS_OF = datetime(2026, 11, 1, tzinfo=UTC)
DEFAULT = WindowDays(45, 40, 10, 10)  # the settings' defaults: 105 days


def test_enough_history_keeps_the_windows(caplog: pytest.LogCaptureFixture) -> None:
    assert fit_windows(DEFAULT, AS_OF - timedelta(days=200), AS_OF) is DEFAULT
    assert fit_windows(DEFAULT, AS_OF - timedelta(days=105) + timedelta(minutes=30), AS_OF) is DEFAULT  # slack
    assert fit_windows(DEFAULT, None, AS_OF) is DEFAULT  # no labels: the empty window says so later
    assert not caplog.records


def test_sixty_days_shrink_every_window_in_proportion(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        fitted = fit_windows(DEFAULT, AS_OF - timedelta(days=60), AS_OF)
    factor = 60 / 105
    for got, configured in zip((fitted.warmup, fitted.train, fitted.valid, fitted.test), (45, 40, 10, 10), strict=True):
        assert got == pytest.approx(configured * factor)
    assert fitted.total == pytest.approx(60)
    (record,) = caplog.records
    message = record.getMessage()
    assert "60.0 days of labelled history" in message and "105.0" in message
    assert "FSML_TRAIN_DAYS" in message and "\n" not in message
    windows = Windows.ending_at(AS_OF, fitted.train, fitted.valid, fitted.test)
    start = windows.start - timedelta(days=fitted.warmup)
    assert abs(start - (AS_OF - timedelta(days=60))) < timedelta(milliseconds=1)


def test_below_the_floor_is_one_error_naming_days_and_settings() -> None:
    """The floor: one day each of validation and test data (10.5 days with the defaults)."""
    fit_windows(DEFAULT, AS_OF - timedelta(days=10.6), AS_OF)
    with pytest.raises(FsmlError) as error:
        fit_windows(DEFAULT, AS_OF - timedelta(days=8), AS_OF)
    message = error.value.message
    assert message.startswith("8.0 days of labelled history before 2026-11-01")
    assert "at least 10.5 needed" in message and "105.0 days" in message
    assert "FSML_FEATURE_WARMUP_DAYS, FSML_TRAIN_DAYS, FSML_VALID_DAYS and FSML_TEST_DAYS" in message
