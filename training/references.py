"""What the monitor compares live traffic with, beyond the features' training profiles.

- The score calibration, fitted on the validation window: the monitor estimates precision,
  recall and PR-AUC from calibrated scores before labels arrive (``fsml.calibration``).
- The decision rate (share of scores at or above the threshold) and the upper tail on the
  validation and test windows: out-of-sample scores, as live scores are (in-sample training
  scores sit further from the middle, most of all in the top percent where decisions are made),
  and as many of them as there are, since a share of a percent is measured on few rows.
- Per-segment references for each column the repo tags ``fsml.segment``: the segment's feature
  and score profiles on the training window and its test-window PR-AUC, so a drift confined to
  one segment is compared with that segment's own past, not drowned in the whole. Features of
  the segment's own entity are left out: inside one merchant category a merchant feature is a
  property of the handful of merchants in it, not a distribution.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score

from fsml.calibration import fit_calibration
from fsml.profiles import numeric_profile, profile_frame, segment_labels
from fsml.stats import entity_days

TAIL_LEVEL = 0.99
MAX_SEGMENTS = 20  # the most frequent values of a segment column; the rest are not profiled
SEGMENT_MIN_ROWS = 200  # training rows a segment needs for a reference worth comparing with
SEGMENT_MIN_POSITIVES = 5


def score_tail(score: np.ndarray, threshold: float) -> dict[str, Any]:
    score = np.asarray(score, dtype=np.float64)
    if len(score) == 0:
        return {}
    cut = float(np.quantile(score, TAIL_LEVEL))
    return {
        "window": "validation and test",
        "rows": len(score),
        "threshold": threshold,
        "decision_rate": float(np.mean(score >= threshold)),
        "tail_level": TAIL_LEVEL,
        "tail_cut": cut,
        "tail_share": float(np.mean(score > cut)),
        "p95": float(np.quantile(score, 0.95)),
        "p99": cut,
    }


def segment_references(
    parts: dict[str, pd.DataFrame],
    scores: dict[str, np.ndarray],
    columns: dict[str, list[str]],
    kinds: dict[str, str],
) -> dict[str, Any]:
    """Per segment column (with the feature columns profiled inside its segments) and value."""
    out: dict[str, Any] = {}
    for column, profiled in columns.items():
        train = segment_labels(parts["train"][column])
        test = segment_labels(parts["test"][column])
        counts = train.value_counts().iloc[:MAX_SEGMENTS]
        values: dict[str, Any] = {}
        others = {c: k for c, k in kinds.items() if c in profiled}
        for value, rows in counts.items():
            if rows < SEGMENT_MIN_ROWS:
                continue
            mask = (train == value).to_numpy()
            values[str(value)] = {
                "rows": int(rows),
                "share": float(rows / len(train)),
                "reference": profile_frame(parts["train"][mask], others, compact=True),
                "score_reference": numeric_profile(scores["train"][mask], compact=True),
                "test": _test_figures(parts["test"]["label"].to_numpy()[test == value], scores["test"][test == value]),
            }
        out[column] = {"values": values, "min_rows": SEGMENT_MIN_ROWS}
    return out


def _test_figures(y: np.ndarray, score: np.ndarray) -> dict[str, float]:
    positives = int(np.sum(y))
    figures = {"rows": float(len(y)), "positives": float(positives)}
    if positives >= SEGMENT_MIN_POSITIVES and positives < len(y):
        figures["pr_auc"] = float(average_precision_score(y, score))
    return figures


def monitor_references(
    parts: dict[str, pd.DataFrame],
    scores: dict[str, np.ndarray],
    threshold: float,
    segments: dict[str, list[str]],
    kinds: dict[str, str],
    entity: str | None,
) -> dict[str, Any]:
    """The model card's ``calibration``, ``score_tail`` and ``segments``; ``entity`` is the join
    key whose rows share fate (the first one)."""
    valid = parts["valid"]
    clusters = entity_days(valid[entity], valid["event_timestamp"]) if entity in valid else None
    return {
        "calibration": fit_calibration(valid["label"].to_numpy(), scores["valid"], clusters),
        "score_tail": score_tail(np.concatenate([scores["valid"], scores["test"]]), threshold),
        "segments": segment_references(parts, scores, segments, kinds),
    }
