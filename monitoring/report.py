"""The drift report: a summary table, then reference-against-current plots of what drifted."""

from __future__ import annotations

from typing import Any

import numpy as np
from fsml.monitoring.drift import ColumnDrift
from fsml.monitoring.report_views import causes_section, performance_section, segments_section, tail_section

from fsml.report import Report, figure_canvas

MAX_PLOTS = 24


def drift_report(summary: dict[str, Any], columns: list[ColumnDrift], score: ColumnDrift) -> str:
    window = summary["window"]
    report = Report(
        f"Drift report: {summary['model']['name']} v{summary['model']['version']}",
        f"{window['source']} from {window['start']} to {window['end']} ({window['rows']:,} rows) "
        f"against the training reference · as of {summary['as_of']}",
    )
    verdict = summary["verdict"] if summary["verdict"] != "measured" else "measured"
    causes = ", ".join(summary["causes"]) or "none"
    performance = summary["performance"]
    report.paragraph(
        f"Verdict: {verdict}. Causes: {causes}. Action: {summary['action']}.",
        "bad" if summary["action"] != "none" else "good",
    )
    if window.get("skipped_files"):
        report.paragraph(f"Unreadable log files left out: {', '.join(window['skipped_files'])}", "bad")
    causes_section(report, summary)
    report.heading("Performance on matured labels")
    report.table([{"measure": k, "value": v} for k, v in performance.items() if not isinstance(v, dict)])
    performance_section(report, performance)
    report.heading("Prediction drift (score)")
    report.table([_row(score)])
    report.figure(_numeric_plot(score), "score: reference against current")
    tail_section(report, summary["score_tail"])
    segments_section(report, summary["segments"])
    report.heading("Features")
    report.table(_row(c) for c in sorted(columns, key=lambda c: (not c.drifted, -c.psi)))
    drifted = [c for c in columns if c.drifted][:MAX_PLOTS]
    if drifted:
        report.heading("Drifted features")
        for column in drifted:
            plot = _numeric_plot(column) if column.kind == "numeric" else _categorical_plot(column)
            report.figure(plot, f"{column.column}: {'; '.join(column.reasons)}")
    return report.html()


def _row(c: ColumnDrift) -> dict[str, Any]:
    return {
        "column": c.column,
        "kind": c.kind,
        "PSI": c.psi,
        "distance": f"{c.distance_name} {c.distance:.3f}",
        "null rate": f"{c.null_rate_reference:.1%} → {c.null_rate_current:.1%}",
        "outside training range": f"{c.out_of_range:.1%}",
        "data quality": "; ".join(c.quality),
        "drifted": "yes" if c.drifted else "",
    }


def _numeric_plot(c: ColumnDrift):
    fig, ax = figure_canvas(6.0, 3.2)
    if not c.bins:
        ax.text(0.5, 0.5, "no values", ha="center")
        return fig
    edges = c.bins["edges"]
    labels = [f"≤{edges[0]:.3g}"] + [f"≤{e:.3g}" for e in edges[1:]] + [f">{edges[-1]:.3g}"] if edges else ["all"]
    x = np.arange(len(c.bins["reference"]))
    ax.bar(x - 0.2, c.bins["reference"], width=0.4, label="reference (training)")
    ax.bar(x + 0.2, c.bins["current"], width=0.4, label="current")
    ax.set_xticks(x, labels[: len(x)], rotation=45, ha="right", fontsize=7)
    ax.set(ylabel="share of rows", title=c.column)
    ax.legend(fontsize=8)
    return fig


def _categorical_plot(c: ColumnDrift):
    fig, ax = figure_canvas(6.0, 3.2)
    x = np.arange(len(c.bins["categories"]))
    ax.bar(x - 0.2, c.bins["reference"], width=0.4, label="reference (training)")
    ax.bar(x + 0.2, c.bins["current"], width=0.4, label="current")
    ax.set_xticks(x, c.bins["categories"], rotation=45, ha="right", fontsize=7)
    ax.set(ylabel="share of rows", title=c.column)
    ax.legend(fontsize=8)
    return fig
