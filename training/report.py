"""The training evaluation report: PR and ROC curves, calibration, importance, score split."""

from __future__ import annotations

import numpy as np
from fsml.training.train import TrainedModel
from sklearn.metrics import precision_recall_curve, roc_curve

from fsml.report import Report, figure_canvas

TOP_FEATURES = 20


def training_report(model: TrainedModel, title: str) -> str:
    card = model.bundle.card
    y = model.test_predictions["label"].to_numpy()
    score = model.test_predictions["score"].to_numpy()
    report = Report(
        title,
        f"feature service {card.feature_service} · as of {card.training_window['as_of']} · "
        f"data fingerprint {card.data_fingerprint[:12]}",
    )
    report.heading("Test window metrics")
    report.table(
        {
            "metric": key.removeprefix("test_"),
            "test": value,
            "validation": card.metrics.get("valid_" + key[5:], ""),
        }
        for key, value in card.metrics.items()
        if key.startswith("test_")
    )
    report.paragraph(f"Decision threshold (best F1 on validation): {card.threshold:.4f}")
    report.heading("Curves on the test window")
    report.figure(_pr_curve(y, score, card.metrics["test_pr_auc"]), "Precision-recall")
    report.figure(_roc_curve(y, score, card.metrics["test_roc_auc"]), "ROC")
    report.figure(_calibration(model.calibration), "Calibration (rows per bin annotated)")
    report.figure(_score_split(y, score, card.threshold), "Score distribution by label")
    report.heading("Feature importance (gain)")
    report.figure(_importance(model.importance), f"Top {TOP_FEATURES} features")
    report.heading("Training window")
    report.table([{"boundary": k, "time": v} for k, v in card.training_window.items()])
    return report.html()


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
    ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=1)
    ax.axvline(0.01, color="tab:red", ls=":", lw=1, label="1% FPR")
    ax.set(
        xlabel="false positive rate (log)",
        ylabel="true positive rate",
        xscale="log",
        xlim=(1e-4, 1),
    )
    ax.legend(loc="lower right")
    return fig


def _calibration(cal: dict[str, list[float]]):
    fig, ax = figure_canvas()
    floor = 1e-5  # log axes: an empty bin's rate of 0 is drawn at the floor
    observed = [max(o, floor) for o in cal["observed"]]
    ax.plot(cal["predicted"], observed, "o-", lw=1.5, label="model")
    ax.plot([floor, 1], [floor, 1], color="grey", ls="--", lw=1, label="perfect")
    for x, y, n in zip(cal["predicted"], observed, cal["count"], strict=True):
        ax.annotate(f"{int(n):,}", (x, y), textcoords="offset points", xytext=(4, -10), fontsize=7)
    ax.set(
        xlabel="mean predicted probability",
        ylabel="observed fraud rate",
        xscale="log",
        yscale="log",
    )
    ax.legend(loc="upper left")
    return fig


def _score_split(y: np.ndarray, score: np.ndarray, threshold: float):
    fig, ax = figure_canvas()
    bins = np.linspace(0, 1, 41)
    ax.hist(score[y == 0], bins=bins, alpha=0.6, density=True, label="legitimate", log=True)
    ax.hist(score[y == 1], bins=bins, alpha=0.6, density=True, label="fraud", log=True)
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
