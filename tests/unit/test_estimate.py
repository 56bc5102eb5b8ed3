"""Performance before labels: calibration, the estimator's arithmetic and its band's coverage."""

from __future__ import annotations

import numpy as np
import pytest
from fsml.monitoring.estimate import _figures, against_realized, estimate
from sklearn.metrics import average_precision_score

from fsml.calibration import calibrate, fit_calibration, redraw

RNG = np.random.default_rng(11)


def _truth(score: np.ndarray) -> np.ndarray:
    """The chance of a positive given the score: a miscalibrated model (too confident)."""
    return score**1.6


def _window(n: int, shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Scores, and labels drawn from the truth; ``shift`` moves the scores' mix (covariate shift)."""
    score = RNG.beta(0.4 + shift, 9.0, n)
    return score, (RNG.random(n) < _truth(score)).astype(int)


def test_isotonic_calibration_recovers_the_truth_and_keeps_its_evidence() -> None:
    score, y = _window(100_000)
    calibration = fit_calibration(y, score)
    assert sum(calibration["negatives"]["rows"]) + len(calibration["positives"]["score"]) == len(y)
    grid = np.linspace(0.02, 0.35, 12)  # where most rows are
    probabilities = calibrate(calibration, grid)
    assert np.all(np.diff(probabilities) >= 0)
    assert np.abs(probabilities - _truth(grid)).max() < 0.06
    drawn = calibrate(calibration, grid, redraw(calibration, np.random.default_rng(0)))
    assert np.all(np.diff(drawn) >= 0) and np.abs(drawn - probabilities).max() < 0.15
    events = np.repeat(np.arange(len(y) // 10 + 1), 10)[: len(y)]  # ten rows per event
    fewer = fit_calibration(y, score, events)
    assert fewer["positives"]["score"] == calibration["positives"]["score"]
    assert max(fewer["positives"]["event"]) < max(calibration["positives"]["event"])


def test_the_figures_are_computed_as_scikit_learn_computes_them() -> None:
    score = np.round(RNG.random(3_000), 2)  # many ties
    labels = (RNG.random(3_000) < score**2).astype(int)
    order = np.argsort(-score, kind="mergesort")
    ordered = score[order]
    ends = np.flatnonzero(np.concatenate([ordered[1:] != ordered[:-1], [True]]))
    flagged = int(np.sum(ordered >= 0.7))
    precision, recall, ap = _figures(labels[order][None, :], ends, flagged)[0]
    assert ap == pytest.approx(average_precision_score(labels, score))
    hit = (score >= 0.7) & (labels == 1)
    assert precision == pytest.approx(hit.sum() / (score >= 0.7).sum())
    assert recall == pytest.approx(hit.sum() / labels.sum())


def test_under_covariate_shift_the_band_holds_the_realised_figures() -> None:
    calibration = fit_calibration(*reversed(_window(30_000)))
    inside = {"precision": 0, "recall": 0, "pr_auc": 0}
    windows = 30
    for i in range(windows):
        score, y = _window(4_000, shift=0.3)  # more high scores than at calibration time
        estimated = estimate(score, 0.3, calibration, seed=i, draws=100)
        flagged = score >= 0.3
        realized = {
            "precision_at_threshold": (flagged & (y == 1)).sum() / flagged.sum(),
            "recall_at_threshold": (flagged & (y == 1)).sum() / y.sum(),
            "pr_auc": average_precision_score(y, score),
        }
        for name, row in against_realized(estimated, realized).items():
            inside[name] += row["within_band"]
    assert all(count >= 0.85 * windows for count in inside.values()), inside


def test_bursts_widen_the_band() -> None:
    """Rows of one entity's burst look alike and share their fate: ten rows, one event."""
    score, y = _window(3_000)
    calibration = fit_calibration(y, score)
    alone = estimate(score, 0.3, calibration, draws=100)
    bursts = np.empty(3_000, dtype=int)
    bursts[np.argsort(score)] = np.arange(3_000) // 10  # neighbours in score form a burst
    together = estimate(score, 0.3, calibration, draws=100, clusters=bursts)
    width = {k: alone[k]["high"] - alone[k]["low"] for k in ("precision", "recall", "pr_auc")}
    assert all(together[k]["high"] - together[k]["low"] > width[k] for k in width)


def test_a_card_without_calibration_says_so() -> None:
    assert "retrain" in estimate(np.array([0.1, 0.2]), 0.5, {})["status"]
