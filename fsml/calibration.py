"""Calibrated probabilities from model scores, and the calibration's own uncertainty.

The monitor estimates performance before labels arrive by reading expected labels off calibrated
scores (confidence-based estimation, as NannyML's CBPE). Training fits an isotonic regression of
the label on the score over the validation window (scikit-learn's ``IsotonicRegression``) and the
model card keeps its blocks: the score range, rows and positives of each run of rows the fit
pooled. Blocks are the fit's sufficient statistics, so the monitor can both apply the map and
redraw it: each block's rate from its Beta posterior (the prior worth one row at the window's
positive rate, so an empty block of thousands of rows stays near zero), made monotone again by
pooling adjacent violators. A confidence band built on redrawn maps covers the error of a
calibration learnt from a few hundred positives, not only the luck of which rows turn out
positive.

Positives come in bursts from one entity (a fraud episode is a dozen payments of one card), so
labels carry less evidence than their count says. Each block also keeps how many distinct
clusters (an entity's rows of one day, ``fsml.stats.entity_days``) its positives came from: a
redraw counts a block's evidence in those, so twenty frauds of two cards weigh as two events.
"""

from __future__ import annotations

from typing import Any

import numpy as np

PRIOR_ROWS = 1.0


def fit_calibration(y: np.ndarray, score: np.ndarray, clusters: np.ndarray | None = None) -> dict[str, Any]:
    """Isotonic map from score to probability, as blocks of the validation rows it pooled;
    ``clusters`` (a code per row) says which rows' labels go together."""
    from sklearn.isotonic import IsotonicRegression

    y = np.asarray(y, dtype=np.float64)
    score = np.asarray(score, dtype=np.float64)
    if len(y) == 0 or y.min() == y.max():
        return {}
    order = np.argsort(score, kind="mergesort")
    s, labels = score[order], y[order]
    groups = (np.arange(len(y)) if clusters is None else np.asarray(clusters))[order]
    fitted = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(s, labels).predict(s)
    # a block ends where the fitted value changes; rows with equal scores always share a block
    ends = np.flatnonzero(np.concatenate([fitted[1:] != fitted[:-1], [True]]))
    starts = np.concatenate([[0], ends[:-1] + 1])
    positives = np.add.reduceat(labels, starts)
    events = [len(np.unique(groups[a : b + 1][labels[a : b + 1] == 1])) for a, b in zip(starts, ends, strict=True)]
    return {
        "method": "isotonic",
        "rows_fitted": len(y),
        "lower": s[starts].tolist(),
        "upper": s[ends].tolist(),
        "rows": (ends - starts + 1).astype(float).tolist(),
        "positives": positives.tolist(),
        "events": [float(e) for e in events],
    }


def _points(calibration: dict[str, Any], rates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Interpolation points: each block is flat over its score range, linear between blocks
    (what ``IsotonicRegression.predict`` does between its thresholds)."""
    x = np.column_stack([calibration["lower"], calibration["upper"]]).ravel()
    return x, np.repeat(rates, 2)


def rates(calibration: dict[str, Any]) -> np.ndarray:
    return np.asarray(calibration["positives"]) / np.asarray(calibration["rows"])


def calibrate(calibration: dict[str, Any], score: np.ndarray, block_rates: np.ndarray | None = None) -> np.ndarray:
    """Probabilities for ``score``; ``block_rates`` replaces the fitted rates (a redrawn map)."""
    x, p = _points(calibration, rates(calibration) if block_rates is None else block_rates)
    return np.interp(np.asarray(score, dtype=np.float64), x, p)


def redraw(calibration: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    """Block rates drawn from their posteriors, pooled back into a monotone map."""
    from sklearn.isotonic import isotonic_regression

    rows = np.asarray(calibration["rows"])
    positives = np.asarray(calibration["positives"])
    events = np.asarray(calibration.get("events", positives))
    scale = np.divide(events, positives, out=np.ones_like(rows), where=positives > 0)  # evidence per row
    base = positives.sum() / rows.sum()
    drawn = rng.beta(events + PRIOR_ROWS * base, (rows - positives) * scale + PRIOR_ROWS * (1 - base))
    return isotonic_regression(drawn, sample_weight=rows, y_min=0.0, y_max=1.0, increasing=True)
