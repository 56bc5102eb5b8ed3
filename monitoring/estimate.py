"""Performance before labels: precision, recall and PR-AUC expected from calibrated scores.

Confidence-based performance estimation (NannyML's CBPE): when the champion's calibrated score
is the probability that a row is positive, the labels a window will get are random draws from
those probabilities, and so are the precision, recall and PR-AUC they will give. The estimate
needs no label and holds under covariate shift (inputs move, the chance of a label given the
inputs does not: a merchant-mix shift). It cannot see concept drift: if the same inputs come to
mean something else, the scores, and so the estimate, do not move. Only matured labels show
that; the monitor sets the estimate against them when they arrive.

Each figure is computed from many draws: a calibration map drawn from the calibration's own
uncertainty (``fsml.calibration.redraw``), then labels drawn from that map's probabilities, then
the figure computed as it will be on real labels (average precision with tied scores grouped, as
scikit-learn computes it). Their central 95 % is the band the realised figure should land in;
the estimate itself is the mean of draws from the fitted map (the redrawn maps' posteriors pull
a block of few events towards the base rate, which belongs in the band, not in the estimate).
Labels are drawn together within a cluster (an entity's rows of one day: one uniform number per
cluster, each row positive when it falls below the row's probability), because positives come in
bursts: a compromised card makes a dozen fraudulent payments in an hour, and a stealthy episode
is a dozen missed frauds at once. Each row's chance stays its probability; only their
independence goes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from fsml.calibration import calibrate, redraw

DRAWS = 200
LEVEL = 0.95
CELLS_PER_CHUNK = 5_000_000  # rows x draws held at once: bounds memory on large windows
FIGURES = ("precision", "recall", "pr_auc")


def _figures(labels: np.ndarray, ends: np.ndarray, flagged: int) -> np.ndarray:
    """(draws, 3): precision and recall at the threshold, average precision, for label draws
    ``labels`` (draws x rows, rows sorted by score, highest first; ``flagged`` rows at or
    above the threshold; ``ends`` the last row of each group of tied scores)."""
    hits = np.cumsum(labels, axis=1, dtype=np.int64)
    positives = hits[:, -1].astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        true_pos = hits[:, flagged - 1] if flagged else np.zeros(len(labels))
        precision = true_pos / flagged if flagged else np.full(len(labels), np.nan)
        recall = true_pos / positives
        at_ends = hits[:, ends].astype(np.float64)
        steps = np.diff(at_ends, axis=1, prepend=0.0)
        average_precision = (steps * (at_ends / (ends + 1))).sum(axis=1) / positives
    return np.column_stack([precision, recall, average_precision])


def estimate(
    score: np.ndarray,
    threshold: float,
    calibration: dict[str, Any],
    seed: int = 0,
    draws: int = DRAWS,
    clusters: np.ndarray | None = None,
) -> dict[str, Any]:
    """Expected precision, recall and PR-AUC of ``score`` at ``threshold``, with their band;
    ``clusters`` (a code per row) groups rows whose labels go together."""
    if not calibration:
        return {"status": "no calibration in the model card: retrain to get estimates"}
    score = np.asarray(score, dtype=np.float64)
    if len(score) == 0:
        return {"status": "no scored rows"}
    order = np.argsort(-score, kind="mergesort")
    ordered = score[order]
    groups = (
        np.arange(len(score)) if clusters is None else np.unique(np.asarray(clusters)[order], return_inverse=True)[1]
    )
    n_groups = int(groups.max()) + 1
    ends = np.flatnonzero(np.concatenate([ordered[1:] != ordered[:-1], [True]]))
    flagged = int(np.sum(ordered >= threshold))
    rng = np.random.default_rng(seed)
    chunk = max(1, CELLS_PER_CHUNK // len(ordered))
    fitted = calibrate(calibration, ordered)

    def run(count: int, probabilities: Callable[[], np.ndarray]) -> np.ndarray:
        results = []
        for start in range(0, count, chunk):
            size = min(chunk, count - start)
            p = np.stack([probabilities() for _ in range(size)])
            results.append(_figures(rng.random((size, n_groups))[:, groups] < p, ends, flagged))
        return np.concatenate(results)

    table = run(draws, lambda: calibrate(calibration, ordered, redraw(calibration, rng)))
    centre = run(max(draws // 2, 1), lambda: fitted)
    expected = calibrate(calibration, score)
    out: dict[str, Any] = {
        "status": "estimated",
        "method": "CBPE: isotonic calibration from the validation window",
        "rows": len(score),
        "flagged": flagged,
        "expected_positives": float(expected.sum()),
        "threshold": threshold,
        "draws": draws,
        "level": LEVEL,
    }
    out["clusters"] = n_groups
    tails = [(1 - LEVEL) / 2 * 100, (1 + LEVEL) / 2 * 100]
    for i, name in enumerate(FIGURES):
        column = table[:, i][~np.isnan(table[:, i])]
        values = centre[:, i][~np.isnan(centre[:, i])]
        if len(column) < draws // 2 or len(values) == 0:  # most draws had no positive (or nothing flagged)
            out[name] = None
            continue
        low, high = np.percentile(column, tails)
        out[name] = {"value": float(values.mean()), "low": float(low), "high": float(high)}
    return out


REALIZED = {"precision": "precision_at_threshold", "recall": "recall_at_threshold", "pr_auc": "pr_auc"}


def concept_drift(performance: dict[str, Any]) -> None:
    """Mark matured labels as concept drift: PR-AUC below the floor set by the test window, and
    below the band of what the calibrated scores let expect of these very rows. The test window's
    figure comes from few positives; a window that falls short of it but not of its own estimate
    is a harder window (more of the frauds the model could never see), not a changed concept.
    Without an estimate, the floor alone decides."""
    compared = performance.get("estimate_vs_realized", {}).get("pr_auc")
    performance["below_floor"] = performance["degraded"]
    performance["below_estimate"] = bool(compared and compared["realized"] < compared["low"])
    performance["degraded"] = performance["below_floor"] and (compared is None or performance["below_estimate"])


def against_realized(estimated: dict[str, Any], realized: dict[str, Any]) -> dict[str, Any]:
    """Each figure's estimate (on the labelled rows) beside what their labels gave."""
    out = {}
    for name, key in REALIZED.items():
        band, value = estimated.get(name), realized.get(key)
        if band is None or value is None:
            continue
        out[name] = {**band, "realized": value, "within_band": band["low"] <= value <= band["high"]}
    return out
