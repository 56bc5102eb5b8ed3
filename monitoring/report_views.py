"""Sections of the drift report that explain a verdict: causes, data quality, the score tail,
performance estimated before labels (and against them), and segments."""

from __future__ import annotations

from typing import Any

import numpy as np

from fsml.report import Report, figure_canvas

CAUSE_TEXT = {
    "data_quality": "data quality: a pipeline break; an incident, automatic retraining held",
    "distribution": "distribution drift: features moved",
    "prediction": "prediction drift: the champion's scores moved",
    "concept": "concept drift: matured labels show worse performance",
}


def causes_section(report: Report, summary: dict[str, Any]) -> None:
    report.heading("Causes")
    if not summary["causes"]:
        report.paragraph(summary["verdict"] if summary["verdict"] != "measured" else "No cause found: healthy.")
        return
    rows = []
    for cause in summary["causes"]:
        for line in summary["evidence"].get(cause, []):
            rows.append({"cause": CAUSE_TEXT[cause], "evidence": line})
    report.table(rows)


def tail_section(report: Report, tail: dict[str, Any]) -> None:
    report.heading("Decision rate and upper tail")
    if tail.get("status") != "measured":
        report.paragraph(tail.get("status", "not measured"))
        return
    report.table(
        {
            "measure": m["name"],
            "reference (validation and test)": f"{m['reference']:.3%}",
            "current": f"{m['current']:.3%}",
            "ratio": m["ratio"],
            "z (entity-clustered)": m["z"],
            "flagged": "yes" if m["flagged"] else "",
        }
        for m in tail["measures"]
    )


def performance_section(report: Report, performance: dict[str, Any]) -> None:
    estimated = performance.get("estimated", {})
    report.heading("Performance estimated before labels (CBPE)")
    if estimated.get("status") != "estimated":
        report.paragraph(estimated.get("status", "no estimate"))
    else:
        report.paragraph(
            f"{estimated['rows']:,} champion rows, {estimated['expected_positives']:.1f} positives expected, "
            f"{estimated['flagged']:,} flagged at {estimated['threshold']:.4f}; band: central "
            f"{estimated['level']:.0%} of {estimated['draws']} draws of calibration and labels."
        )
        report.table(_band_rows(estimated))
    compared = performance.get("estimate_vs_realized")
    if compared:
        report.heading("Estimate against realised, on the rows whose labels matured")
        report.table(
            {
                "figure": name,
                "estimate": f"{c['value']:.3f} [{c['low']:.3f}, {c['high']:.3f}]",
                "realised": f"{c['realized']:.3f}",
                "within band": "yes" if c["within_band"] else "no",
            }
            for name, c in compared.items()
        )
        report.figure(_estimate_plot(compared), "estimate (band) against realised")


def _band_rows(estimated: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"figure": name, "estimate": band["value"], "low": band["low"], "high": band["high"]}
        for name in ("precision", "recall", "pr_auc")
        if (band := estimated.get(name))
    ]


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


def segments_section(report: Report, segments: dict[str, Any]) -> None:
    for column, view in segments.get("columns", {}).items():
        report.heading(f"Segments by {column}")
        if "segments" not in view:
            report.paragraph(view.get("status", ""))
            continue
        rows = []
        for s in view["segments"]:
            estimated = s.get("performance", {}).get("estimated", {})
            pr_auc = estimated.get("pr_auc") if isinstance(estimated, dict) else None
            rows.append(
                {
                    "segment": s["segment"],
                    "rows": s["rows"],
                    "drifted": "yes" if s.get("drifted") else "",
                    "drifted features": ", ".join(s.get("drifted_features", [])) or s.get("status", ""),
                    "score distance": s.get("score_distance", ""),
                    "estimated PR-AUC": f"{pr_auc['value']:.3f} [{pr_auc['low']:.3f}, {pr_auc['high']:.3f}]"
                    if pr_auc
                    else "",
                    "realised PR-AUC": s.get("performance", {}).get("pr_auc", ""),
                }
            )
        report.table(rows)
        measured = [s for s in view["segments"] if s.get("status") == "measured"]
        if measured:
            report.figure(_segment_plot(measured, column), "largest feature distance per segment")


def _segment_plot(segments: list[dict[str, Any]], column: str):
    fig, ax = figure_canvas(6.0, 0.3 * len(segments) + 1.2)
    names = [s["segment"] for s in segments]
    largest = [max(s["features"].values(), default=0.0) for s in segments]
    colours = ["tab:red" if s["drifted"] else "tab:blue" for s in segments]
    ax.barh(names, largest, color=colours)
    ax.set(xlabel="largest feature distance (Wasserstein in std, or Jensen-Shannon)", title=column)
    return fig
