"""What the drift report shows beyond drift (``templates/drift_report.html.j2``): the causes, the
score tail, performance estimated before labels and against them, and segments."""

from __future__ import annotations

from typing import Any

import numpy as np

from fsml.report import figure_canvas, png

CAUSE_TEXT = {
    "data_quality": "data quality: a pipeline break; an incident, automatic retraining held",
    "distribution": "distribution drift: features moved",
    "prediction": "prediction drift: the champion's scores moved",
    "concept": "concept drift: matured labels show worse performance",
}
FIGURES = ("precision", "recall", "pr_auc")


def causes_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"cause": CAUSE_TEXT[cause], "evidence": line}
        for cause in summary["causes"]
        for line in summary["evidence"].get(cause, [])
    ]


def tail_rows(tail: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "measure": m["name"],
            "reference (validation and test)": f"{m['reference']:.3%}",
            "current": f"{m['current']:.3%}",
            "ratio": m["ratio"],
            "z (entity-clustered)": m["z"],
            "flagged": "yes" if m["flagged"] else "",
        }
        for m in tail.get("measures", [])
    ]


def _band(band: dict[str, Any] | None) -> str:
    return f"{band['value']:.3f} [{band['low']:.3f}, {band['high']:.3f}]" if band else ""


def estimate_context(performance: dict[str, Any]) -> dict[str, Any]:
    """The estimate's line and table, and, once labels matured, estimate against realised."""
    estimated = performance.get("estimated", {})
    out: dict[str, Any] = {"status": estimated.get("status", "no estimate"), "rows": [], "compared": []}
    if estimated.get("status") == "estimated":
        out["line"] = (
            f"{estimated['rows']:,} champion rows, {estimated['expected_positives']:.1f} positives expected, "
            f"{estimated['flagged']:,} flagged at {estimated['threshold']:.4f}; band: central "
            f"{estimated['level']:.0%} of {estimated['draws']} draws of the calibration and of labels."
        )
        out["rows"] = [{"figure": name, "estimate [band]": _band(estimated.get(name))} for name in FIGURES]
    compared = performance.get("estimate_vs_realized") or {}
    if compared:
        out["compared"] = [
            {
                "figure": name,
                "estimate [band]": _band(row),
                "realised": f"{row['realized']:.3f}",
                "within band": "yes" if row["within_band"] else "no",
            }
            for name, row in compared.items()
        ]
        out["plot"] = png(_estimate_plot(compared))
    return out


def _estimate_plot(compared: dict[str, Any]):
    fig, ax = figure_canvas(5.0, 3.0)
    names = list(compared)
    x = np.arange(len(names))
    values = np.array([compared[n]["value"] for n in names])
    low = values - np.array([compared[n]["low"] for n in names])
    high = np.array([compared[n]["high"] for n in names]) - values
    ax.errorbar(x - 0.1, values, yerr=[low, high], fmt="o", capsize=4, label="estimate (band)")
    ax.plot(x + 0.1, [compared[n]["realized"] for n in names], "s", color="tab:red", label="realised")
    ax.set_xticks(x, names)
    ax.set(ylim=(0, 1.05), ylabel="value")
    ax.legend(fontsize=8)
    return fig


def segment_tables(segments: dict[str, Any]) -> list[dict[str, Any]]:
    """One table (and a plot of the largest feature distance) per segment column."""
    out = []
    for column, view in segments.get("columns", {}).items():
        if "segments" not in view:
            out.append({"column": column, "status": view.get("status", ""), "rows": []})
            continue
        rows = []
        for s in view["segments"]:
            performance = s.get("performance", {})
            estimated = performance.get("estimated", {})
            rows.append(
                {
                    "segment": s["segment"],
                    "rows": s["rows"],
                    "drifted": "yes" if s.get("drifted") else "",
                    "drifted features": ", ".join(s.get("drifted_features", [])) or s.get("status", ""),
                    "score distance": s.get("score_distance", ""),
                    "estimated PR-AUC": _band(estimated.get("pr_auc")) if isinstance(estimated, dict) else "",
                    "realised PR-AUC": performance.get("pr_auc", ""),
                }
            )
        measured = [s for s in view["segments"] if s.get("status") == "measured"]
        out.append(
            {
                "column": column,
                "status": "",
                "rows": rows,
                "plot": png(_segment_plot(measured, column)) if measured else None,
            }
        )
    return out


def _segment_plot(segments: list[dict[str, Any]], column: str):
    fig, ax = figure_canvas(6.0, 0.3 * len(segments) + 1.2)
    names = [s["segment"] for s in segments]
    largest = [max(s["features"].values(), default=0.0) for s in segments]
    colours = ["tab:red" if s["drifted"] else "tab:blue" for s in segments]
    ax.barh(names, largest, color=colours)
    ax.set(xlabel="largest feature distance (Wasserstein in std, or Jensen-Shannon)", title=column)
    return fig
