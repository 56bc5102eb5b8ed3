"""``fsml monitor run``: the current window against the champion's training reference.

Feature drift and data quality are judged on every row of the window (inputs do not depend on
the model); score drift, the tail and performance only on the rows the current champion scored,
so a model is never blamed for its predecessor's predictions. The verdict names its causes
(``fsml.monitoring.causes``); performance is estimated from calibrated scores before labels
arrive (``estimate``) and measured once they do (``performance``); segments the repo declares
get their own view (``segments``).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from fsml.monitoring.causes import insufficient, judge
from fsml.monitoring.current import Window, logged_window, offline_window
from fsml.monitoring.drift import ColumnDrift, Thresholds, categorical_drift, numeric_drift
from fsml.monitoring.estimate import against_realized, concept_drift, estimate
from fsml.monitoring.performance import labelled, measure
from fsml.monitoring.report import drift_report
from fsml.monitoring.segments import log_column, segment_views
from fsml.monitoring.tail import tail_drift
from fsml.monitoring.triggers import follow_incident

from fsml import atomic, registry
from fsml.errors import FsmlError
from fsml.featurestore import describe_service, open_store
from fsml.model import FeatureInfo, ModelBundle
from fsml.settings import Settings
from fsml.stats import entity_days

log = logging.getLogger(__name__)


def champion(settings: Settings) -> ModelBundle:
    bundle = registry.load_champion(settings, ", so there is no reference to compare with")
    if not bundle.card.reference or not bundle.card.score_reference:
        name = settings.model_name(settings.feature_service)
        raise FsmlError(f"{name} v{bundle.version} has no reference statistics to compare with")
    return bundle


def thresholds(settings: Settings) -> Thresholds:
    return Thresholds(
        settings.drift_psi,
        settings.drift_wasserstein,
        settings.drift_js,
        settings.drift_null_rate,
        settings.drift_out_of_range,
        settings.drift_scale_ratio,
        settings.drift_stuck_share,
    )


def column_drift(
    frame: pd.DataFrame,
    features: list[FeatureInfo],
    reference: dict[str, dict[str, Any]],
    settings: Settings,
    declared: dict[str, dict[str, float]],
    factor: float = 1.0,
) -> list[ColumnDrift]:
    """Per-column verdicts; thresholds: settings, then the feature's ``fsml.drift.*`` tags, then
    ``FSML_DRIFT_OVERRIDES``, times ``factor``."""
    base = thresholds(settings)

    def one(feature: FeatureInfo) -> ColumnDrift:
        limits = base.updated(declared.get(feature.column)).updated(settings.drift_overrides.get(feature.column))
        limits = limits.scaled(factor)
        values = frame[feature.column].to_numpy() if feature.column in frame else np.full(len(frame), np.nan)
        if feature.dtype == "string":
            return categorical_drift(feature.column, reference[feature.column], values, limits)
        numbers = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(float, na_value=np.nan)
        invalid = float(np.mean(pd.notna(values) & np.isnan(numbers))) if len(values) else 0.0
        return numeric_drift(feature.column, reference[feature.column], numbers, limits, invalid)

    # numpy releases the GIL in its sorting and searching, so columns are worked on in parallel.
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(one, [f for f in features if f.column in reference]))


def run_monitor(
    settings: Settings,
    as_of: datetime | None = None,
    source: str = "logs",
    window: Window | None = None,
) -> dict[str, Any]:
    began = time.perf_counter()
    as_of = as_of or datetime.now(UTC)
    bundle = champion(settings)
    card = bundle.card
    if window is None and source == "offline":
        window = offline_window(settings, bundle, as_of, settings.monitor_window_days)
    window = window or logged_window(settings.prediction_log_dir, as_of, settings.monitor_window_days)
    frame = window.frame
    spec = describe_service(open_store(settings), card.feature_service)
    declared = {f.column: dict(f.drift_thresholds) for f in spec.features if f.drift_thresholds}
    columns = column_drift(frame, card.features, card.reference, settings, declared)
    own = frame[frame["model_version"].astype(str) == bundle.version] if "model_version" in frame else frame
    score_limits = Thresholds(wasserstein=settings.drift_score_wasserstein)
    key = log_column(own, card.join_keys[0]) if card.join_keys else None
    clusters = entity_days(own[key], own["event_timestamp"]) if key else None
    scores = own["score"].to_numpy(float)
    score = numeric_drift("score", card.score_reference, scores, score_limits)
    tail = tail_drift(scores, card.score_tail, clusters, settings.drift_tail_ratio, settings.drift_tail_z)
    joined = labelled(own, spec.label_source, as_of)
    perf = measure(joined, len(own), card, settings.performance_tolerance, settings.min_labelled_positives)
    perf["estimated"] = estimate(scores, card.threshold, card.calibration, settings.seed, clusters=clusters)
    if perf["status"] == "measured":
        matured = own.index.get_indexer(joined["log_row"])
        on_labelled = estimate(
            joined["score"].to_numpy(float),
            card.threshold,
            card.calibration,
            settings.seed,
            clusters=clusters[matured] if clusters is not None else None,
        )
        perf["estimate_vs_realized"] = against_realized(on_labelled, perf)
        concept_drift(perf)

    def segment_drift(rows: pd.DataFrame, reference: dict[str, dict[str, Any]]) -> list[ColumnDrift]:
        return column_drift(rows, card.features, reference, settings, declared, settings.drift_segment_factor)

    why_not = insufficient(frame, settings.monitor_min_rows, settings.monitor_min_hours)
    segments = (
        segment_views(
            frame,
            own,
            joined,
            card,
            segment_drift,
            score_limits,
            log_column(frame, card.join_keys[0]) if card.join_keys else None,
            settings.monitor_segment_min_rows,
            settings.drift_min_features,
            settings.seed,
        )
        if why_not is None
        else {"columns": {}, "drifted": []}
    )
    verdict = judge(why_not, columns, score, tail, perf, segments, settings.drift_min_features)
    drifted = [c.column for c in columns if c.drifted] if why_not is None else []
    summary: dict[str, Any] = {
        "as_of": as_of.isoformat(),
        "model": {"name": settings.model_name(card.feature_service), "version": bundle.version},
        "window": window.describe() | {"champion_rows": len(own)},
        "verdict": verdict.status,
        "causes": verdict.causes,
        "evidence": verdict.evidence,
        "action": verdict.action,
        "drift_detected": why_not is None and bool({"distribution", "prediction"} & set(verdict.causes)),
        "drifted_features": drifted,
        "data_quality": [{"column": c.column, "breaks": c.quality} for c in columns if c.quality and why_not is None],
        "score_drift": score.summary() | {"rows": len(own)},
        "score_tail": tail,
        "performance": perf,
        "segments": segments,
        "features": [c.summary() for c in columns],
    }
    # as of the same time, two runs (another window, another model) keep two reports
    path = settings.monitoring_reports_dir / f"drift-{as_of:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}.html"
    atomic.write_text(path, drift_report(summary, columns, score))
    summary["report"] = str(path)
    summary["seconds"] = round(time.perf_counter() - began, 3)
    _remember(settings, summary)
    follow_incident(settings, summary)
    log.info("monitor: %s; causes %s, action %s", verdict.status, verdict.causes or "none", verdict.action)
    return summary


def _remember(settings: Settings, summary: dict[str, Any]) -> None:
    settings.monitoring_dir.mkdir(parents=True, exist_ok=True)
    brief = {k: v for k, v in summary.items() if k not in ("features", "segments")}
    with open(settings.monitoring_dir / "history.jsonl", "a") as history:
        history.write(json.dumps(brief, default=str) + "\n")
