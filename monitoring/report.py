"""The drift report: the verdict and its causes, performance (estimated, realised), the score and
its tail, segments, a summary table of the features, then plots of what drifted."""

from __future__ import annotations

from typing import Any

import numpy as np
from fsml.monitoring.drift import ColumnDrift
from fsml.monitoring.report_views import causes_rows, estimate_context, segment_tables, tail_rows

from fsml.report import figure_canvas, png, render

MAX_PLOTS = 24


def drift_report(summary: dict[str, Any], columns: list[ColumnDrift], score: ColumnDrift) -> str:
    window = summary["window"]
    verdict = f"{summary['verdict']}; causes: {', '.join(summary['causes']) or 'none'}"
    performance = summary["performance"]
    drifted = [c for c in columns if c.drifted][:MAX_PLOTS]
    return render(
        "fsml.monitoring",
        "drift_report.html.j2",
        title=f"Drift report: {summary['model']['name']} v{summary['model']['version']}",
        subtitle=f"{window['source']} from {window['start']} to {window['end']} ({window['rows']:,} rows) "
        f"against the training reference · as of {summary['as_of']}",
        verdict=verdict,
        action=summary["action"],
        skipped=window.get("skipped_files") or [],
        causes=causes_rows(summary),
        performance=[{"measure": k, "value": v} for k, v in performance.items() if not isinstance(v, dict)],
        estimate=estimate_context(performance),
        score_row=[_row(score)],
        score_plot=png(_numeric_plot(score)),
        tail=tail_rows(summary["score_tail"]),
        segments=segment_tables(summary["segments"]),
        features=[_row(c) for c in sorted(columns, key=lambda c: (not c.drifted, -c.psi))],
        drifted=[
            (
                png(_numeric_plot(c) if c.kind == "numeric" else _categorical_plot(c)),
                f"{c.column}: {'; '.join(c.reasons)}",
            )
            for c in drifted
        ],
    )


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
