"""Calibrated probabilities from model scores, and the calibration's own uncertainty.

The monitor estimates performance before labels arrive by reading expected labels off calibrated
scores (confidence-based estimation, as NannyML's CBPE). Training fits an isotonic regression of
the label on the score over the validation window (scikit-learn's ``isotonic_regression``, the
pool-adjacent-violators fit of ``IsotonicRegression``), and the model card keeps what the fit was
made from, compactly: the negatives as score bins (mean score, rows; equal-count bins where the
rows are, equal-width ones where they thin out, at the top, where a few negatives decide the
map), the positives one by one (score, and the event each belongs to).

Events matter because positives come in bursts: a fraud episode is a dozen payments of one card
within hours, so twenty frauds may be two events, and a validation window with two more stealthy
episodes than usual shifts the whole low end of the map at once. The map's uncertainty is
therefore drawn by resampling events (a cluster bootstrap with Poisson weights; negatives, plenty
and spread over thousands of entities, stay as they are) and fitting again.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

NEGATIVE_BINS = 512  # equal-count bins of the negatives' scores
WIDTH_BINS = 256  # and equal-width ones over their range

Map = tuple[np.ndarray, np.ndarray]  # (scores, probabilities): a monotone step map for np.interp


def fit_calibration(y: np.ndarray, score: np.ndarray, events: np.ndarray | None = None) -> dict[str, Any]:
    """What the isotonic map is fitted from; ``events`` (a code per row) groups rows whose labels
    go together (an entity's rows of one day: ``fsml.stats.entity_days``)."""
    y = np.asarray(y, dtype=np.int64)
    score = np.asarray(score, dtype=np.float64)
    if len(y) == 0 or y.min() == y.max():
        return {}
    negatives = np.sort(score[y == 0])
    edges = np.unique(
        np.concatenate(
            [
                np.quantile(negatives, np.linspace(0, 1, NEGATIVE_BINS + 1)),
                np.linspace(negatives[0], negatives[-1], WIDTH_BINS + 1),
            ]
        )
    )
    bins = [b for b in np.split(negatives, np.searchsorted(negatives, edges[1:-1], side="right")) if len(b)]
    codes = np.arange(int(y.sum())) if events is None else pd.factorize(pd.Series(np.asarray(events)[y == 1]))[0]
    return {
        "method": "isotonic",
        "rows_fitted": len(y),
        "negatives": {"score": [float(b.mean()) for b in bins], "rows": [float(len(b)) for b in bins]},
        "positives": {"score": score[y == 1].tolist(), "event": codes.tolist()},
    }


def _fit(calibration: dict[str, Any], positive_weights: np.ndarray) -> Map:
    from sklearn.isotonic import isotonic_regression

    negatives, positives = calibration["negatives"], calibration["positives"]
    x = np.concatenate([negatives["score"], positives["score"]])
    y = np.concatenate([np.zeros(len(negatives["score"])), np.ones(len(positives["score"]))])
    w = np.concatenate([negatives["rows"], positive_weights])
    # tied scores are one point: the weighted share of positives among them
    points, index = np.unique(x, return_inverse=True)
    weight = np.bincount(index, weights=w, minlength=len(points))
    share = np.divide(
        np.bincount(index, weights=w * y, minlength=len(points)), weight, out=np.zeros(len(points)), where=weight > 0
    )
    keep = weight > 0
    fitted = isotonic_regression(share[keep], sample_weight=weight[keep], y_min=0.0, y_max=1.0, increasing=True)
    return points[keep], fitted


def fitted_map(calibration: dict[str, Any]) -> Map:
    return _fit(calibration, np.ones(len(calibration["positives"]["score"])))


def redraw(calibration: dict[str, Any], rng: np.random.Generator) -> Map:
    """A map fitted on the validation window with its events resampled (Poisson weights)."""
    events = np.asarray(calibration["positives"]["event"], dtype=np.int64)
    weights = rng.poisson(1.0, int(events.max()) + 1 if len(events) else 0)
    return _fit(calibration, weights[events].astype(np.float64))


def calibrate(calibration: dict[str, Any], score: np.ndarray, mapping: Map | None = None) -> np.ndarray:
    """Probabilities for ``score`` from ``mapping`` (default: the map fitted on every row)."""
    x, p = mapping if mapping is not None else fitted_map(calibration)
    return np.interp(np.asarray(score, dtype=np.float64), x, p)
