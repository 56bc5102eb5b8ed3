"""``fsml monitor run``: the current window against the champion's training reference.

Feature drift is judged on every row of the window (inputs do not depend on the model); score
drift and performance only on the rows the current champion scored, so a model is never blamed
for its predecessor's predictions.
"""

from __future__ import annotations

import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from fsml.monitoring.current import Window, logged_window, offline_window
from fsml.monitoring.drift import ColumnDrift, Thresholds, categorical_drift, numeric_drift
from fsml.monitoring.performance import performance
from fsml.monitoring.report import drift_report

from fsml import atomic, registry
from fsml.errors import FsmlError
from fsml.featurestore import describe_service, open_store
from fsml.model import ModelBundle
from fsml.settings import Settings

log = logging.getLogger(__name__)


def champion(settings: Settings) -> ModelBundle:
    bundle = registry.load_champion(settings, ", so there is no reference to compare with")
    if not bundle.card.reference or not bundle.card.score_reference:
        name = settings.model_name(settings.feature_service)
        raise FsmlError(f"{name} v{bundle.version} has no reference statistics to compare with")
    return bundle


def column_drift(
    frame: pd.DataFrame,
    bundle: ModelBundle,
    settings: Settings,
    declared: dict[str, dict[str, float]],
) -> list[ColumnDrift]:
    """Per-column verdicts; thresholds: settings, then the feature's ``fsml.drift.*`` tags, then
    ``FSML_DRIFT_OVERRIDES``."""
    base = Thresholds(
        settings.drift_psi,
        settings.drift_wasserstein,
        settings.drift_js,
        settings.drift_null_rate,
        settings.drift_out_of_range,
    )

    def one(feature) -> ColumnDrift:  # noqa: ANN001
        limits = base.updated(declared.get(feature.column)).updated(settings.drift_overrides.get(feature.column))
        reference = bundle.card.reference[feature.column]
        values = frame[feature.column].to_numpy() if feature.column in frame else np.full(len(frame), np.nan)
        if feature.dtype == "string":
            return categorical_drift(feature.column, reference, values, limits)
        return numeric_drift(feature.column, reference, pd.to_numeric(values, errors="coerce").astype(float), limits)

    # numpy releases the GIL in its sorting and searching, so columns are worked on in parallel.
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(one, bundle.card.features))


def run_monitor(
    settings: Settings,
    as_of: datetime | None = None,
    source: str = "logs",
    window: Window | None = None,
) -> dict[str, Any]:
    began = time.perf_counter()
    as_of = as_of or datetime.now(UTC)
    bundle = champion(settings)
    if window is None and source == "offline":
        window = offline_window(settings, bundle, as_of, settings.monitor_window_days)
    window = window or logged_window(settings.prediction_log_dir, as_of, settings.monitor_window_days)
    frame = window.frame
    spec = describe_service(open_store(settings), bundle.card.feature_service)
    declared = {f.column: dict(f.drift_thresholds) for f in spec.features if f.drift_thresholds}
    columns = column_drift(frame, bundle, settings, declared)
    own = frame[frame["model_version"].astype(str) == bundle.version] if "model_version" in frame else frame
    score_limits = Thresholds(wasserstein=settings.drift_score_wasserstein)
    score = numeric_drift("score", bundle.card.score_reference, own["score"].to_numpy(float), score_limits)
    perf = performance(
        own,
        spec.label_source,
        bundle.card,
        as_of,
        settings.performance_tolerance,
        settings.min_labelled_positives,
    )
    enough = len(frame) >= settings.monitor_min_rows
    drifted = [c.column for c in columns if c.drifted] if enough else []
    drift_detected = enough and (len(drifted) >= settings.drift_min_features or (score.drifted and len(own) > 0))
    action = "retrain" if drift_detected or perf.get("degraded") else "none"
    summary: dict[str, Any] = {
        "as_of": as_of.isoformat(),
        "model": {
            "name": settings.model_name(bundle.card.feature_service),
            "version": bundle.version,
        },
        "window": window.describe() | {"champion_rows": len(own)},
        "verdict": "measured" if enough else f"too few rows for a drift verdict (< {settings.monitor_min_rows})",
        "drift_detected": drift_detected,
        "drifted_features": drifted,
        "score_drift": score.summary() | {"rows": len(own)},
        "performance": perf,
        "action": action,
        "features": [c.summary() for c in columns],
    }
    path = settings.monitoring_reports_dir / f"drift-{as_of:%Y%m%dT%H%M%S}.html"
    atomic.write_text(path, drift_report(summary, columns, score))
    summary["report"] = str(path)
    summary["seconds"] = round(time.perf_counter() - began, 3)
    _remember(settings, summary)
    log.info(
        "monitor: %s, action %s",
        f"{len(drifted)} drifted features" if drifted else "no drift",
        action,
    )
    return summary


def _remember(settings: Settings, summary: dict[str, Any]) -> None:
    settings.monitoring_dir.mkdir(parents=True, exist_ok=True)
    brief = {k: v for k, v in summary.items() if k != "features"}
    with open(settings.monitoring_dir / "history.jsonl", "a") as history:
        history.write(json.dumps(brief, default=str) + "\n")
