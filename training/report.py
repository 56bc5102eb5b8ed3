"""The training evaluation report: metrics, the champion compared, the confusion matrix at the
threshold, and PR, ROC, threshold, calibration, score and importance plots of the test window."""

from __future__ import annotations

from typing import Any

import numpy as np
from fsml.training.train import TrainedModel
from sklearn.metrics import precision_recall_curve, roc_curve

from fsml.report import figure_canvas, png, render

TOP_FEATURES = 20
FPR_FLOOR = 1e-4  # left end of the log-scale ROC axis


def training_report(model: TrainedModel, title: str, comparison: dict[str, Any]) -> str:
    card = model.bundle.card
    y = model.test_predictions["label"].to_numpy()
    score = model.test_predictions["score"].to_numpy()
    metrics = [
        {"metric": key.removeprefix("test_"), "test": value, "validation": card.metrics.get("valid_" + key[5:], "")}
        for key, value in card.metrics.items()
        if key.startswith("test_")
    ]
    figures = [
        (png(_pr_curve(y, score, card.metrics["test_pr_auc"])), "Precision-recall"),
        (png(_roc_curve(y, score, card.metrics["test_roc_auc"])), "ROC (false positive rate on a log scale)"),
        (png(_threshold_curve(y, score, card.threshold)), "Precision and recall against the threshold"),
        (png(_calibration(model.calibration)), "Calibration (rows per bin annotated)"),
        (png(_score_split(y, score, card.threshold)), "Score distribution by label"),
    ]
    return render(
        "fsml.training",
        "training_report.html.j2",
        title=title,
        subtitle=f"feature service {card.feature_service} · as of {card.training_window['as_of']} · "
        f"data fingerprint {card.data_fingerprint[:12]}",
        card=card,
        metrics=metrics,
        comparison=comparison,
        confusion=confusion(y, score, card.threshold),
        figures=figures,
        importance=png(_importance(model.importance)),
        top_features=TOP_FEATURES,
        window=[{"boundary": k, "time": v} for k, v in card.training_window.items()],
    )


def confusion(y: np.ndarray, score: np.ndarray, threshold: float) -> list[dict[str, Any]]:
    """Counts of actual against decided, at the model's threshold."""
    flagged = score >= threshold
    rows = []
    for label, name in ((0, "actual negative"), (1, "actual positive")):
        actual = y == label
        rows.append({"": name, "pass": int(np.sum(actual & ~flagged)), "flag": int(np.sum(actual & flagged))})
    return rows


def _pr_curve(y: np.ndarray, score: np.ndarray, auc: float):
    fig, ax = figure_canvas()
    precision, recall, _ = precision_recall_curve(y, score)
    ax.plot(recall, precision, lw=1.5, label=f"model (AP {auc:.3f})")
    ax.axhline(y.mean(), color="grey", ls="--", lw=1, label=f"base rate {y.mean():.3%}")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02))
    ax.legend(loc="upper right")
    return fig


def _roc_curve(y: np.ndarray, score: np.ndarray, auc: float):
    fig, ax = figure_canvas()
    fpr, tpr, _ = roc_curve(y, score)
    ax.plot(fpr, tpr, lw=1.5, label=f"model (AUC {auc:.3f})")
    # The chance line y = x, drawn through many points: on a log axis a two-point line from 0
    # cannot be drawn (log 0), and would be straight where y = x is a curve.
    chance = np.logspace(np.log10(FPR_FLOOR), 0, 100)
    ax.plot(chance, chance, color="grey", ls="--", lw=1, label="chance")
    ax.axvline(0.01, color="tab:red", ls=":", lw=1, label="1% FPR")
    ax.set(xlabel="false positive rate (log)", ylabel="true positive rate", xscale="log", xlim=(FPR_FLOOR, 1),
           ylim=(0, 1.02))  # fmt: skip
    ax.legend(loc="lower right")
    return fig


def _threshold_curve(y: np.ndarray, score: np.ndarray, threshold: float):
    fig, ax = figure_canvas()
    precision, recall, cuts = precision_recall_curve(y, score)
    ax.plot(cuts, precision[:-1], lw=1.5, label="precision")
    ax.plot(cuts, recall[:-1], lw=1.5, label="recall")
    ax.axvline(threshold, color="black", ls="--", lw=1, label=f"threshold {threshold:.3f}")
    ax.set(xlabel="threshold (score ≥)", ylabel="share", xscale="log", ylim=(0, 1.02))
    ax.legend(loc="lower left")
    return fig


def _calibration(cal: dict[str, list[float]]):
    fig, ax = figure_canvas()
    floor = 1e-5  # log axes: an empty bin's rate of 0 is drawn at the floor
    observed = [max(o, floor) for o in cal["observed"]]
    ax.plot(cal["predicted"], observed, "o-", lw=1.5, label="model")
    ax.plot([floor, 1], [floor, 1], color="grey", ls="--", lw=1, label="perfect")
    for x, y, n in zip(cal["predicted"], observed, cal["count"], strict=True):
        ax.annotate(f"{int(n):,}", (x, y), textcoords="offset points", xytext=(4, -10), fontsize=7)
    ax.set(xlabel="mean predicted probability", ylabel="observed positive rate", xscale="log", yscale="log")
    ax.legend(loc="upper left")
    return fig


def _score_split(y: np.ndarray, score: np.ndarray, threshold: float):
    fig, ax = figure_canvas()
    bins = np.linspace(0, 1, 41)
    ax.hist(score[y == 0], bins=bins, alpha=0.6, density=True, label="negative", log=True)
    ax.hist(score[y == 1], bins=bins, alpha=0.6, density=True, label="positive", log=True)
    ax.axvline(threshold, color="black", ls="--", lw=1, label="threshold")
    ax.set(xlabel="score", ylabel="density (log)")
    ax.legend(loc="upper center")
    return fig


def _importance(importance: dict[str, float]):
    top = sorted(importance.items(), key=lambda kv: kv[1], reverse=True)[:TOP_FEATURES][::-1]
    fig, ax = figure_canvas(7.5, 0.3 * len(top) + 1)
    ax.barh([name for name, _ in top], [gain for _, gain in top])
    ax.set(xlabel="total gain")
    ax.tick_params(axis="y", labelsize=7)
    return fig
