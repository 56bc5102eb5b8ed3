"""Drift statistics against reference profiles: what must and must not count as drift."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fsml.monitoring.drift import Thresholds, categorical_drift, numeric_drift, psi

from fsml.profiles import categorical_profile, numeric_profile

LIMITS = Thresholds()
RNG = np.random.default_rng(0)


def _amounts(n: int, scale: float = 1.0) -> np.ndarray:
    return np.exp(RNG.normal(3.3, 0.8, n)) * scale


def test_same_distribution_is_not_drift() -> None:
    reference = numeric_profile(_amounts(200_000))
    result = numeric_drift("amount", reference, _amounts(100_000), LIMITS)
    assert not result.drifted and result.psi < 0.01 and result.distance < 0.02 and result.ks < 0.02


def test_inflated_amounts_are_drift() -> None:
    result = numeric_drift("amount", numeric_profile(_amounts(200_000)), _amounts(100_000, 1.4), LIMITS)
    assert result.drifted and result.distance > LIMITS.wasserstein
    assert any(r.startswith("wasserstein") for r in result.reasons)


def test_busy_entities_moving_by_one_percent_are_not_drift() -> None:
    """Rows of a few busy merchants share near-identical counts; a 1% change is not drift."""
    merchants = np.array([30, 80, 400, 2_500, 33_000, 36_000], dtype=float)
    weights = np.array([0.15, 0.15, 0.15, 0.1, 0.25, 0.2])
    days = RNG.normal(1.0, 0.001, 200_000)
    reference = numeric_profile(RNG.choice(merchants, 200_000, p=weights) * days)
    current = RNG.choice(merchants * 0.99, 100_000, p=weights) * RNG.normal(1.0, 0.001, 100_000)
    result = numeric_drift("merchant_txn_count_30d", reference, current, LIMITS)
    assert not result.drifted, result.reasons
    assert result.distance < 0.05  # values moved by 1%: a small fraction of a standard deviation
    assert result.psi > LIMITS.psi  # PSI swings on such columns: why it is not the numeric verdict


def test_null_rate_and_range_changes_are_data_quality_breaks() -> None:
    reference = numeric_profile(_amounts(50_000))
    values = _amounts(50_000)
    values[:10_000] = np.nan
    result = numeric_drift("amount", reference, values, LIMITS)
    assert "null rate" in " ".join(result.quality) and result.drifted
    wrong_unit = _amounts(50_000) * 100  # cents instead of dollars
    result = numeric_drift("amount", reference, wrong_unit, LIMITS)
    assert "outside the training range" in " ".join(result.quality)
    assert "unit change" in " ".join(result.quality) and result.scale_ratio == pytest.approx(100, rel=0.05)


def test_inflation_and_mix_shifts_are_drift_not_breaks() -> None:
    """Amounts 40% larger, or a mix of small and large amounts shifting: distribution drift."""
    reference = numeric_profile(_amounts(100_000))
    inflated = numeric_drift("amount", reference, _amounts(100_000, 1.4), LIMITS)
    assert inflated.drifted and not inflated.quality
    small, large = _amounts(100_000, 0.2), _amounts(100_000, 8.0)
    reference = numeric_profile(np.concatenate([small[:90_000], large[:10_000]]))
    shifted = numeric_drift("amount", reference, np.concatenate([small[:20_000], large[:80_000]]), LIMITS)
    assert shifted.drifted and not shifted.quality, shifted.quality  # deciles moved by unequal factors


def test_a_window_feature_with_more_empty_windows_is_drift_not_a_break() -> None:
    """A 24-hour maximum is null when the window is empty: fewer events make more of them."""
    values = _amounts(100_000)
    values[:10_000] = np.nan
    reference = numeric_profile(values)
    more_empty = _amounts(100_000)
    more_empty[:18_000] = np.nan
    result = numeric_drift("amount_max_24h", reference, more_empty, LIMITS)
    assert result.drifted and not result.quality and "null rate" in " ".join(result.reasons)


def test_a_stuck_feature_is_a_break_a_nearly_constant_one_is_not() -> None:
    reference = numeric_profile(np.round(RNG.normal(42, 14, 50_000)))
    result = numeric_drift("age", reference, np.full(10_000, 42.0), LIMITS)
    assert any(r.startswith("stuck") for r in result.quality)
    mostly_zero = numeric_profile((RNG.random(50_000) < 0.12).astype(float))  # a 1-hour count
    assert not numeric_drift("count_1h", mostly_zero, np.zeros(10_000), LIMITS).quality


def test_values_that_are_not_numbers_are_a_type_change() -> None:
    reference = numeric_profile(_amounts(10_000))
    result = numeric_drift("amount", reference, _amounts(10_000), LIMITS, invalid=0.3)
    assert any("not numbers" in r for r in result.quality)


def test_category_mix_shift_and_unseen_categories() -> None:
    categories = np.array(["grocery", "retail", "online", "travel"])
    reference = categorical_profile(pd.Series(RNG.choice(categories, 100_000, p=[0.5, 0.3, 0.1, 0.1])))
    same = RNG.choice(categories, 50_000, p=[0.5, 0.3, 0.1, 0.1])
    assert not categorical_drift("category", reference, same, LIMITS).drifted
    shifted = RNG.choice(categories, 50_000, p=[0.3, 0.2, 0.4, 0.1])
    result = categorical_drift("category", reference, shifted, LIMITS)
    assert result.drifted and result.distance > LIMITS.js and result.p_value < 1e-6
    unseen = np.array(["crypto"] * 10_000 + ["grocery"] * 10_000, dtype=object)
    assert categorical_drift("category", reference, unseen, LIMITS).out_of_range == pytest.approx(0.5)


def test_thresholds_can_be_loosened_per_feature() -> None:
    reference = numeric_profile(_amounts(100_000))
    shifted = _amounts(100_000, 1.2)
    assert numeric_drift("a", reference, shifted, LIMITS).drifted
    assert not numeric_drift("a", reference, shifted, LIMITS.updated({"wasserstein": 5.0})).drifted


def test_psi_of_identical_shares_is_zero() -> None:
    assert psi(np.array([0.5, 0.5]), np.array([0.5, 0.5])) == 0.0
    assert psi(np.array([0.9, 0.1]), np.array([0.1, 0.9])) > 1.0


def test_values_just_past_the_range_are_drift_far_past_it_a_break() -> None:
    """A 30-day count that grew past its training maximum, against a -999 sentinel."""
    counts = RNG.poisson(200, 50_000).astype(float)
    reference = numeric_profile(counts)
    grown = numeric_drift("count_30d", reference, RNG.poisson(300, 50_000).astype(float), LIMITS)
    assert "outside the training range" in " ".join(grown.reasons) and not grown.quality
    sentinel = RNG.poisson(200, 50_000).astype(float)
    sentinel[:10_000] = -999.0
    broken = numeric_drift("count_30d", reference, sentinel, LIMITS)
    assert any("far outside the training range" in r for r in broken.quality)
