"""Model evaluation: ranking and calibration metrics, and the decision threshold.

PR-AUC (average precision) is the primary metric: with under 2% positives, ROC-AUC flatters a
model, while PR-AUC falls with every false alarm ranked above a fraud.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    log_loss,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

TARGET_FPR = 0.01


def choose_threshold(y: np.ndarray, score: np.ndarray) -> float:
    """The score cut-off with the best F1 on ``y``: used on the validation window only."""
    precision, recall, thresholds = precision_recall_curve(y, score)
    f1 = 2 * precision[:-1] * recall[:-1] / np.maximum(precision[:-1] + recall[:-1], 1e-12)
    return float(thresholds[int(np.argmax(f1))])


def recall_at_fpr(y: np.ndarray, score: np.ndarray, fpr_budget: float = TARGET_FPR) -> float:
    fpr, tpr, _ = roc_curve(y, score)
    return float(tpr[fpr <= fpr_budget].max())


def metrics(y: np.ndarray, score: np.ndarray, threshold: float) -> dict[str, float]:
    """Every figure the registry records for one window; keys get a split prefix later."""
    y = np.asarray(y, dtype=np.int64)
    flagged = score >= threshold
    true_pos = int(np.sum(flagged & (y == 1)))
    both = len(np.unique(y)) == 2
    return {
        "pr_auc": float(average_precision_score(y, score)) if both else float("nan"),
        "roc_auc": float(roc_auc_score(y, score)) if both else float("nan"),
        "log_loss": float(log_loss(y, np.clip(score, 1e-15, 1 - 1e-15), labels=[0, 1])),
        "recall_at_1pct_fpr": recall_at_fpr(y, score) if both else float("nan"),
        "precision_at_threshold": true_pos / max(int(flagged.sum()), 1),
        "recall_at_threshold": true_pos / max(int(y.sum()), 1),
        "positive_rate": float(y.mean()) if len(y) else float("nan"),
        "rows": float(len(y)),
    }


CALIBRATION_EDGES = (0.0, 1e-3, 3e-3, 0.01, 0.03, 0.1, 0.3, 0.6, 1.0)


def calibration(y: np.ndarray, score: np.ndarray) -> dict[str, list[float]]:
    """Mean predicted against observed fraud rate per score bin.

    Bins are log-spaced: with rare positives, equal-count bins put every fraud in the top bin.
    """
    index = np.clip(np.searchsorted(CALIBRATION_EDGES, score, side="right") - 1, 0, len(CALIBRATION_EDGES) - 2)
    groups = [np.flatnonzero(index == b) for b in range(len(CALIBRATION_EDGES) - 1)]
    groups = [g for g in groups if len(g)]
    return {
        "predicted": [float(score[g].mean()) for g in groups],
        "observed": [float(y[g].mean()) for g in groups],
        "count": [float(len(g)) for g in groups],
    }
