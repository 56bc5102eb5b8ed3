"""Drift and performance per segment: the values of a column the repo tags ``fsml.segment``.

A change confined to one kind of merchant moves the whole only by that merchant kind's share of
traffic, often under any threshold. Each segment with enough rows in the window
(``FSML_MONITOR_SEGMENT_MIN_ROWS``) is compared with its own training profile from the model
card, distances measured in the whole's standard deviations (a segment's own spread is narrow,
and would make any small move look large). A segment's rows come from fewer entities than the
whole's, and an entity's rows are alike (a customer's favourite merchants, hours, amounts), so
its statistics are noisier than the whole's: a feature drifts inside a segment when its distance
passes the threshold (times ``FSML_DRIFT_SEGMENT_FACTOR``) and the 95th percentile of the
distances that resampling the segment's entities gives (a cluster bootstrap), scaled for the
reference's own sampling. The segment's performance is estimated from calibrated scores and,
once labels mature, measured.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from fsml.monitoring.causes import distribution_drifted
from fsml.monitoring.drift import ColumnDrift, Thresholds, numeric_drift
from fsml.monitoring.estimate import estimate
from sklearn.metrics import average_precision_score

from fsml.model import ModelCard
from fsml.profiles import profile_frame, segment_labels

DriftFn = Callable[[pd.DataFrame, dict[str, dict[str, Any]]], list[ColumnDrift]]
MIN_POSITIVES = 5
BOOTSTRAP = 20  # resamples of a segment's entities for its noise floor


def log_column(frame: pd.DataFrame, column: str) -> str | None:
    """Where a segment column is in a window: a feature column, or a logged request input."""
    for name in (column, f"input__{column}"):
        if name in frame:
            return name
    return None


def segment_views(
    frame: pd.DataFrame,
    own: pd.DataFrame,
    labelled: pd.DataFrame,
    card: ModelCard,
    drift: DriftFn,
    score_limits: Thresholds,
    entity: str | None,
    min_rows: int,
    min_features: int,
    seed: int,
) -> dict[str, Any]:
    """Per segment column and value: rows, drifted features, score drift, performance;
    ``entity`` names the window's column of the entity whose rows are alike (for the noise)."""
    out: dict[str, Any] = {"columns": {}, "drifted": [], "min_rows": min_rows}
    rng = np.random.default_rng(seed)
    for column, reference in card.segments.items():
        where = log_column(frame, column)
        if where is None:
            out["columns"][column] = {"status": "not in the window"}
            continue
        labels = segment_labels(frame[where]).to_numpy()
        own_labels = segment_labels(own[where]).to_numpy()
        label_rows = segment_labels(own.loc[labelled["log_row"], where]).to_numpy() if len(labelled) else np.array([])
        views = []
        for value, ref in reference["values"].items():
            view: dict[str, Any] = {
                "segment": value,
                "rows": int(np.sum(labels == value)),
                "training_rows": ref["rows"],
            }
            if view["rows"] < min_rows:
                views.append(view | {"status": f"fewer than {min_rows} rows"})
                continue
            rows = frame[labels == value]
            columns = drift(rows, _on_global_scale(ref["reference"], card.reference))
            clusters = rows[entity].to_numpy() if entity else None
            floor = _noise_floor(rows, card, ref, drift, clusters, rng)
            moved = [
                c.column for c in columns if c.column in distribution_drifted(columns) and c.distance > floor[c.column]
            ]
            mine = own_labels == value
            score = numeric_drift("score", ref["score_reference"], own["score"].to_numpy(float)[mine], score_limits)
            drifted = len(moved) >= min_features
            view |= {
                "status": "measured",
                "drifted": drifted,
                "drifted_features": moved,
                "features": {c.column: round(c.distance, 4) for c in columns},
                "noise_floor": {k: round(v, 4) for k, v in floor.items()},
                "reasons": {c.column: c.reasons for c in columns if c.column in moved},
                "score_distance": score.distance,
                "performance": _performance(own, mine, labelled, label_rows == value, card, ref, seed),
            }
            if drifted:
                out["drifted"].append(f"{column}={value}")
            views.append(view)
        out["columns"][column] = {"segments": views}
    return out


def _noise_floor(
    rows: pd.DataFrame,
    card: ModelCard,
    reference: dict[str, Any],
    drift: DriftFn,
    clusters: np.ndarray | None,
    rng: np.random.Generator,
) -> dict[str, float]:
    """Per feature: the distance that resampling the segment's own entities reaches (95th
    percentile), times the allowance for the reference being a sample too."""
    kinds = {f.column: "categorical" if f.dtype == "string" else "numeric" for f in card.features}
    itself = _on_global_scale(
        profile_frame(rows, {c: kinds[c] for c in reference["reference"]}, compact=True), card.reference
    )
    codes = pd.factorize(pd.Series(clusters if clusters is not None else np.arange(len(rows))))[0]
    groups = int(codes.max()) + 1
    seen: dict[str, list[float]] = {}
    for _ in range(BOOTSTRAP):
        picked = np.bincount(rng.integers(0, groups, groups), minlength=groups)
        resample = rows.iloc[np.repeat(np.arange(len(rows)), picked[codes])]
        for column in drift(resample, itself):
            seen.setdefault(column.column, []).append(column.distance)
    allowance = float(np.sqrt(1 + len(rows) / max(reference["rows"], 1)))
    return {c: float(np.quantile(d, 0.95)) * allowance for c, d in seen.items()}


def _on_global_scale(reference: dict[str, Any], whole: dict[str, Any]) -> dict[str, Any]:
    return {
        c: {**p, "std": whole[c]["std"]} if "std" in p and "std" in whole.get(c, {}) else p
        for c, p in reference.items()
    }


def _performance(
    own: pd.DataFrame,
    mine: np.ndarray,
    labelled: pd.DataFrame,
    matured: np.ndarray,
    card: ModelCard,
    reference: dict[str, Any],
    seed: int,
) -> dict[str, Any]:
    scores = own["score"].to_numpy(float)[mine]
    out: dict[str, Any] = {
        "estimated": estimate(scores, card.threshold, card.calibration, seed, draws=100),
        "reference_pr_auc": reference.get("test", {}).get("pr_auc"),
    }
    y = labelled["label"].to_numpy(np.int64)[matured] if len(labelled) else np.zeros(0, np.int64)
    positives = int(y.sum())
    out |= {"labelled_rows": len(y), "positives": positives}
    if MIN_POSITIVES <= positives < len(y):
        out["pr_auc"] = float(average_precision_score(y, labelled["score"].to_numpy(float)[matured]))
    return out
