"""Drift statistics of one column against its training reference (``fsml.profiles``).

Numeric columns: PSI over the reference deciles, and the Wasserstein distance between the
reference and current quantile functions in units of the reference standard deviation. It
weighs how far values moved, not just whether they crossed a point: a busy merchant whose
30-day count goes from 33,092 to 32,714 has barely moved, amounts inflated by 40% have. The
Kolmogorov-Smirnov distance at the reference percentiles is reported alongside. Categorical
columns: PSI over categories and the Jensen-Shannon distance. Both: the change in null rate and
the share of values outside what training saw (preparation drift). Every statistic is one pass
of numpy over the column, so a million rows by fifty columns takes seconds.

Verdicts use effect sizes, not p-values (with a million rows every difference is
"significant"). For numeric columns the verdict is the Wasserstein distance: PSI is computed
and reported, but on columns where a few entities carry most rows (a busy merchant's count)
it swings with any small change of those entities' values, so it decides only for categorical
columns, whose bins are the categories themselves.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.spatial.distance import jensenshannon
from scipy.stats import chisquare

from fsml.profiles import OTHER

EPS = 1e-4  # floor of a bin's share in PSI, so empty bins do not divide by zero
RANGE_MARGIN = 0.1  # values this share of the training range beyond it count as out of range


@dataclass(frozen=True)
class Thresholds:
    psi: float = 0.2
    wasserstein: float = 0.1  # in reference standard deviations
    js: float = 0.1
    null_rate: float = 0.05  # absolute change
    out_of_range: float = 0.05  # share of values outside the training range

    def updated(self, overrides: dict[str, float] | None) -> Thresholds:
        return Thresholds(**{**asdict(self), **(overrides or {})})


@dataclass
class ColumnDrift:
    column: str
    kind: str
    rows: int
    psi: float
    distance: float  # Wasserstein in reference std (numeric) or Jensen-Shannon (categorical)
    distance_name: str
    null_rate_reference: float
    null_rate_current: float
    out_of_range: float
    drifted: bool = False
    reasons: list[str] = field(default_factory=list)
    bins: dict[str, list[Any]] = field(default_factory=dict)  # for the report's plot
    p_value: float | None = None
    ks: float | None = None

    def summary(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("bins")
        return out


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    e = np.maximum(np.asarray(expected, dtype=float), EPS)
    a = np.maximum(np.asarray(actual, dtype=float), EPS)
    return float(np.sum((a - e) * np.log(a / e)))


def _cdf(ordered: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Share of ``ordered`` (sorted, no NaN) at or below each point."""
    return np.searchsorted(ordered, points, side="right") / max(len(ordered), 1)


def ks_at_points(points: np.ndarray, levels: np.ndarray, ordered: np.ndarray) -> float:
    """max |F_current - F_reference| over the reference's CDF points (between percentiles)."""
    return float(np.max(np.abs(_cdf(ordered, points) - levels))) if len(points) else 0.0


def wasserstein(reference_quantiles: np.ndarray, ordered: np.ndarray, scale: float) -> float:
    """W1 between the quantile functions from the 1st to the 99th percentile, over ``scale``.

    The extreme percentiles are left out: with heavy tails (amounts) the largest value of each
    sample alone would decide the distance.
    """
    grid = np.linspace(0.0, 1.0, len(reference_quantiles))[1:-1]
    current = np.quantile(ordered, grid, method="linear") if len(ordered) else grid * np.nan
    return float(np.mean(np.abs(current - reference_quantiles[1:-1])) / scale) if scale > 0 else 0.0


def numeric_drift(column: str, reference: dict[str, Any], values: np.ndarray, limits: Thresholds) -> ColumnDrift:
    """One sort of the column; every statistic is then read off it by binary search."""
    ordered = np.sort(np.asarray(values, dtype=np.float64))  # NaN sorts last
    present = int(np.searchsorted(ordered, np.inf, side="right"))
    ordered = ordered[:present]
    null_rate = 1 - present / len(values) if len(values) else 0.0
    if not reference.get("quantiles") or present == 0:
        result = ColumnDrift(
            column, "numeric", len(values), 0.0, 0.0, "wasserstein", reference["null_rate"], null_rate, 0.0
        )
        return _decide(result, limits)
    edges = np.asarray(reference["bin_edges"])
    # bins are (-inf, e0], (e0, e1], ..., (e_last, inf), as in fsml.profiles.bin_fractions
    current = np.diff(np.concatenate([[0], np.searchsorted(ordered, edges, side="right"), [present]])) / present
    margin = RANGE_MARGIN * (reference["max"] - reference["min"])
    below = np.searchsorted(ordered, reference["min"] - margin, side="left")
    above = present - np.searchsorted(ordered, reference["max"] + margin, side="right")
    outside = (below + above) / present
    result = ColumnDrift(
        column=column,
        kind="numeric",
        rows=len(values),
        psi=psi(reference["bin_fractions"], current),
        distance=wasserstein(np.asarray(reference["quantiles"]), ordered, reference["std"]),
        distance_name="wasserstein",
        null_rate_reference=reference["null_rate"],
        null_rate_current=null_rate,
        out_of_range=float(outside),
        bins={"edges": edges.tolist(), "reference": reference["bin_fractions"], "current": current.tolist()},
        ks=ks_at_points(np.asarray(reference["cdf_points"]), np.asarray(reference["cdf_levels"]), ordered),
    )
    return _decide(result, limits)


def categorical_drift(column: str, reference: dict[str, Any], values: np.ndarray, limits: Thresholds) -> ColumnDrift:
    known = reference["frequencies"]
    counts = pd.Series(values, dtype=object).value_counts(dropna=True)  # hash counting, no Python loop
    present = int(counts.sum())
    null_rate = 1 - present / len(values) if len(values) else 0.0
    observed = dict.fromkeys(known, 0.0)
    for label, count in counts.items():
        key = str(label) if str(label) in known else OTHER
        observed[key] = observed.get(key, 0.0) + float(count)
    names = list(observed)
    expected = np.array([known.get(n, 0.0) for n in names])
    current = np.array([observed[n] for n in names]) / max(present, 1)
    p_value = None
    if present and expected.sum() > 0:
        scaled = np.maximum(expected / expected.sum(), EPS)
        p_value = float(chisquare(current * present, scaled / scaled.sum() * present).pvalue)
    result = ColumnDrift(
        column=column,
        kind="categorical",
        rows=len(values),
        psi=psi(expected, current) if present else 0.0,
        distance=float(jensenshannon(expected + EPS, current + EPS, base=2)) if present else 0.0,
        distance_name="js",
        null_rate_reference=reference["null_rate"],
        null_rate_current=null_rate,
        out_of_range=float(observed.get(OTHER, 0.0) / max(present, 1)) if OTHER not in known else 0.0,
        bins={"categories": names, "reference": expected.tolist(), "current": current.tolist()},
        p_value=p_value,
    )
    return _decide(result, limits)


def _decide(result: ColumnDrift, limits: Thresholds) -> ColumnDrift:
    checks = [
        (
            result.kind == "categorical" and result.psi > limits.psi,
            f"PSI {result.psi:.3f} > {limits.psi}",
        ),
        (
            result.distance > (limits.wasserstein if result.kind == "numeric" else limits.js),
            f"{result.distance_name} {result.distance:.3f} > "
            f"{limits.wasserstein if result.kind == 'numeric' else limits.js}",
        ),
        (
            abs(result.null_rate_current - result.null_rate_reference) > limits.null_rate,
            f"null rate {result.null_rate_reference:.1%} -> {result.null_rate_current:.1%}",
        ),
        (
            result.out_of_range > limits.out_of_range,
            f"{result.out_of_range:.1%} outside the training range",
        ),
    ]
    result.reasons = [reason for failed, reason in checks if failed]
    result.drifted = bool(result.reasons)
    return result
