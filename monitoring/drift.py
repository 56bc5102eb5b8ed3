"""Drift statistics of one column against its training reference (``fsml.profiles``).

Numeric columns: PSI over the reference deciles, and the Wasserstein distance between the
reference and current quantile functions in units of the reference standard deviation. It
weighs how far values moved, not just whether they crossed a point: a busy merchant whose
30-day count goes from 33,092 to 32,714 has barely moved, amounts inflated by 40% have. The
Kolmogorov-Smirnov distance at the reference percentiles is reported alongside. Categorical
columns: PSI over categories and the Jensen-Shannon distance. Both: the change in null rate and
the share of values outside what training saw (preparation drift). Every statistic is one pass
of numpy over the column, so a million rows by fifty columns takes seconds.

Each column's reasons are split in two. *Data-quality* breaks are what a broken pipeline does:
the null rate jumps up (by the threshold and to three times what it was: a window feature with
no event in its window is null by design, and fewer events make more of those), values fall
far outside the training range (beyond a whole range width: a sentinel such as -999, a value in
the wrong unit) or are not numbers, categories never seen in training appear, every decile moves
by the same large factor (a unit change: amounts in cents), a feature that took many values is
stuck at one. The rest is *distribution* drift: distances, PSI, a null rate that moved less,
values just beyond the training range (a 30-day count that grew past its training maximum). The
monitor raises an incident for the first and retrains for the second.

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

from fsml.profiles import OTHER, top_share

EPS = 1e-4  # floor of a bin's share in PSI, so empty bins do not divide by zero
RANGE_MARGIN = 0.1  # values this share of the training range beyond it count as out of range
FAR_MARGIN = 1.0  # ... and this share beyond it as far out of range (a data-quality break)
SCALE_LEVELS = np.linspace(0.1, 0.9, 9)  # deciles compared for a unit change
STUCK_REFERENCE_MAX = 0.5  # "stuck" needs a feature whose commonest value held at most this share
NULL_JUMP_FACTOR = 3.0  # a null-rate rise is a break when the rate also (at least) triples


@dataclass(frozen=True)
class Thresholds:
    psi: float = 0.2
    wasserstein: float = 0.1  # in reference standard deviations
    js: float = 0.1
    null_rate: float = 0.05  # absolute change
    out_of_range: float = 0.05  # share of values outside the training range
    scale_ratio: float = 5.0  # every decile moved by this factor or more, the same way: a unit change
    stuck_share: float = 0.95  # one value holds this share of the window

    def updated(self, overrides: dict[str, float] | None) -> Thresholds:
        return Thresholds(**{**asdict(self), **(overrides or {})})

    def scaled(self, factor: float) -> Thresholds:
        """Distribution thresholds times ``factor`` (for samples noisier than the whole)."""
        names = ("psi", "wasserstein", "js", "null_rate", "out_of_range")
        return self.updated({n: getattr(self, n) * factor for n in names})


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
    quality: list[str] = field(default_factory=list)  # the reasons that are data-quality breaks
    scale_ratio: float | None = None  # geometric median of current over reference deciles
    top_share: float | None = None  # share of the commonest value in the window
    top_share_reference: float | None = None
    invalid: float = 0.0  # share of values present but not numbers (a type change)
    far_out_of_range: float = 0.0  # share beyond a whole training range outside it
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


def scale_ratio(reference_quantiles: np.ndarray, ordered: np.ndarray) -> tuple[float | None, float]:
    """(geometric median of current over reference deciles, the smallest factor any decile moved
    by, in that direction; 1 if some decile moved the other way).

    Only deciles nonzero with the same sign in both count. A unit change multiplies every decile
    by one factor; a mix shift leaves some deciles where they were."""
    if len(ordered) == 0 or len(reference_quantiles) < 3:
        return None, 1.0
    grid = np.linspace(0.0, 1.0, len(reference_quantiles))
    before = np.interp(SCALE_LEVELS, grid, reference_quantiles)
    after = np.quantile(ordered, SCALE_LEVELS)
    usable = (before * after > 0) & (np.abs(before) > 1e-12)
    if usable.sum() < 3:
        return None, 1.0
    logs = np.log(after[usable] / before[usable])
    same_way = bool(np.all(logs > 0) or np.all(logs < 0))
    return float(np.exp(np.median(logs))), float(np.exp(np.abs(logs).min())) if same_way else 1.0


def numeric_drift(
    column: str, reference: dict[str, Any], values: np.ndarray, limits: Thresholds, invalid: float = 0.0
) -> ColumnDrift:
    """One sort of the column; every statistic is then read off it by binary search."""
    ordered = np.sort(np.asarray(values, dtype=np.float64))  # NaN sorts last
    present = int(np.searchsorted(ordered, np.inf, side="right"))
    ordered = ordered[:present]
    null_rate = 1 - present / len(values) if len(values) else 0.0
    if not reference.get("quantiles") or present == 0:
        result = ColumnDrift(
            column, "numeric", len(values), 0.0, 0.0, "wasserstein", reference["null_rate"], null_rate, 0.0
        )
        result.invalid = invalid
        return _decide(result, limits)
    edges = np.asarray(reference["bin_edges"])
    # bins are (-inf, e0], (e0, e1], ..., (e_last, inf), as in fsml.profiles.bin_fractions
    current = np.diff(np.concatenate([[0], np.searchsorted(ordered, edges, side="right"), [present]])) / present
    outside, far = (_outside(ordered, reference["min"], reference["max"], m) for m in (RANGE_MARGIN, FAR_MARGIN))
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
        ks=ks_at_points(np.asarray(reference["cdf_points"]), np.asarray(reference["cdf_levels"]), ordered)
        if "cdf_points" in reference
        else None,
        top_share=top_share(ordered),
        top_share_reference=reference.get("top_share"),
        invalid=invalid,
        far_out_of_range=far,
    )
    ratio, least = scale_ratio(np.asarray(reference["quantiles"]), ordered)
    result.scale_ratio = ratio
    return _decide(result, limits, least)


def _outside(ordered: np.ndarray, low: float, high: float, margin: float) -> float:
    """Share of ``ordered`` more than ``margin`` training ranges below ``low`` or above ``high``."""
    width = margin * (high - low)
    below = np.searchsorted(ordered, low - width, side="left")
    above = len(ordered) - np.searchsorted(ordered, high + width, side="right")
    return float((below + above) / len(ordered))


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
        top_share=float(current.max()) if present else None,
        top_share_reference=float(max(known.values())) if known else None,
    )
    return _decide(result, limits)


def _decide(result: ColumnDrift, limits: Thresholds, least_factor: float = 1.0) -> ColumnDrift:
    numeric = result.kind == "numeric"
    null_change = result.null_rate_current - result.null_rate_reference
    distance_limit = limits.wasserstein if numeric else limits.js
    null_jump = null_change > limits.null_rate and result.null_rate_current >= NULL_JUMP_FACTOR * (
        result.null_rate_reference
    )
    distribution = [
        (not numeric and result.psi > limits.psi, f"PSI {result.psi:.3f} > {limits.psi}"),
        (
            result.distance > distance_limit,
            f"{result.distance_name} {result.distance:.3f} > {distance_limit:g}",
        ),
        (
            abs(null_change) > limits.null_rate and not null_jump,
            f"null rate {result.null_rate_reference:.1%} -> {result.null_rate_current:.1%}",
        ),
        (
            numeric and result.out_of_range > limits.out_of_range,
            f"{result.out_of_range:.1%} outside the training range",
        ),
    ]
    ratio = result.scale_ratio
    stuck = result.top_share is not None and result.top_share_reference is not None
    quality = [
        (null_jump, f"null rate {result.null_rate_reference:.1%} -> {result.null_rate_current:.1%}"),
        (result.invalid > limits.null_rate, f"{result.invalid:.1%} of values are not numbers (type change)"),
        (
            (result.far_out_of_range if numeric else result.out_of_range) > limits.out_of_range,
            f"{result.far_out_of_range:.1%} far outside the training range"
            if numeric
            else f"{result.out_of_range:.1%} in categories never seen in training",
        ),
        (
            ratio is not None and least_factor >= limits.scale_ratio,
            f"every decile x{ratio:.3g} (unit change)" if ratio else "",
        ),
        (
            stuck and result.top_share >= limits.stuck_share and result.top_share_reference <= STUCK_REFERENCE_MAX,
            f"stuck: one value in {result.top_share:.1%} of rows (training: {result.top_share_reference:.1%})"
            if stuck
            else "",
        ),
    ]
    result.quality = [reason for failed, reason in quality if failed]
    result.reasons = [reason for failed, reason in distribution if failed] + result.quality
    result.drifted = bool(result.reasons)
    return result
