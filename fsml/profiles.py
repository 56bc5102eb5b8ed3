"""Distribution profiles of features and scores: the reference the drift monitor compares with.

A numeric profile keeps decile bins with their shares (for PSI), the reference CDF at the
percentiles (for a KS distance), 101 quantiles, the null rate, the range and the share of the
most common value (a feature stuck at one value is a data-quality break only if it was not
already nearly constant). A categorical profile keeps the share of each frequent value. Both fit
in a few KB of JSON; per-segment profiles (one per feature and segment) keep no CDF points and
six significant digits, to stay small.

Bin edges are placed in the widest gap between training values near each decile, never on a
value. Features such as a merchant's 30-day count put thousands of rows on a few close values
(one cluster per busy merchant); an edge inside such a cluster would let a 1% change in the
count move the whole mass across it and read as drift.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

QUANTILES = np.linspace(0.0, 1.0, 101)
PSI_BINS = 10
MAX_CATEGORIES = 50
OTHER = "__other__"


def numeric_profile(values: np.ndarray, compact: bool = False) -> dict[str, Any]:
    values = np.asarray(values, dtype=np.float64)
    present = values[~np.isnan(values)]
    profile: dict[str, Any] = {
        "kind": "numeric",
        "count": int(len(values)),
        "null_rate": float(1 - len(present) / len(values)) if len(values) else 0.0,
    }
    if len(present) == 0:
        return profile | {"quantiles": [], "bin_edges": [], "bin_fractions": []}
    ordered = np.sort(present)
    edges = gap_edges(ordered, np.linspace(0, 1, PSI_BINS + 1)[1:-1], spread=0.5 / PSI_BINS)
    profile |= {
        "min": float(ordered[0]),
        "max": float(ordered[-1]),
        "mean": float(present.mean()),
        "std": float(present.std()),
        "quantiles": np.quantile(ordered, QUANTILES).tolist(),
        "bin_edges": edges.tolist(),
        "bin_fractions": bin_fractions(present, edges).tolist(),
        "top_share": top_share(ordered),
    }
    if compact:
        return {k: _rounded(v) for k, v in profile.items()}
    points = gap_edges(ordered, QUANTILES[1:-1], spread=0.0)
    return profile | {
        "cdf_points": points.tolist(),
        "cdf_levels": (np.searchsorted(ordered, points, side="right") / len(ordered)).tolist(),
    }


def _rounded(value: Any) -> Any:
    if isinstance(value, list):
        return [float(f"{v:.6g}") for v in value]
    return float(f"{value:.6g}") if isinstance(value, float) else value


def top_share(ordered: np.ndarray) -> float:
    """Share of the most common value of a sorted array without NaN (run lengths, no hashing)."""
    if len(ordered) == 0:
        return 0.0
    starts = np.flatnonzero(np.concatenate([[True], ordered[1:] != ordered[:-1], [True]]))
    return float(np.diff(starts).max() / len(ordered))


def gap_edges(ordered: np.ndarray, probabilities: np.ndarray, spread: float) -> np.ndarray:
    """One edge per probability: the midpoint of the widest relative gap between consecutive
    distinct values whose ranks lie within ``spread`` of it (the next value up if 0)."""
    values = np.unique(ordered)
    if len(values) < 2:
        return np.array([])
    # rank (as a share of rows) of each distinct value's last occurrence
    ranks = np.searchsorted(ordered, values, side="right") / len(ordered)
    gaps = np.diff(values) / (np.abs(values[:-1]) + np.abs(values[1:]) + 1e-12)
    edges = []
    for p in probabilities:
        lo = np.searchsorted(ranks[:-1], p - spread, side="left")
        hi = max(np.searchsorted(ranks[:-1], p + spread, side="right"), lo + 1)
        lo, hi = min(lo, len(gaps) - 1), min(hi, len(gaps))
        window = gaps[lo:hi]
        # among the gaps nearly as wide as the widest, the one whose rank is closest to p
        wide = np.flatnonzero(window >= 0.9 * window.max())
        best = lo + int(wide[np.argmin(np.abs(ranks[lo + wide] - p))])
        edges.append((values[best] + values[best + 1]) / 2)
    return np.unique(edges)


def bin_fractions(present: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Share of values per bin; bins are (-inf, e0], (e0, e1], ..., (e_last, inf)."""
    counts = np.bincount(np.searchsorted(edges, present, side="left"), minlength=len(edges) + 1)
    return counts / max(len(present), 1)


def categorical_profile(values: pd.Series) -> dict[str, Any]:
    present = values.dropna().astype(str)
    shares = present.value_counts(normalize=True, sort=True)
    top = shares.iloc[:MAX_CATEGORIES]
    frequencies = {str(k): float(v) for k, v in top.items()}
    if len(shares) > MAX_CATEGORIES:
        frequencies[OTHER] = float(shares.iloc[MAX_CATEGORIES:].sum())
    return {
        "kind": "categorical",
        "count": int(len(values)),
        "null_rate": float(1 - len(present) / len(values)) if len(values) else 0.0,
        "frequencies": frequencies,
    }


def segment_labels(values: pd.Series) -> pd.Series:
    """Segment values as strings, the same for a training set and a log: whole numbers read
    as integers ("3", not "3.0", when a column of keys became float because of a null)."""
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        numbers = values.astype("Float64")
        whole = numbers.isna() | (numbers == numbers.round())
        if bool(whole.all()):
            return numbers.astype("Int64").astype("string").astype(object).where(numbers.notna(), None)
    return values.astype(object).where(values.notna(), None).map(lambda v: v if v is None else str(v))


def profile_frame(df: pd.DataFrame, kinds: dict[str, str], compact: bool = False) -> dict[str, dict[str, Any]]:
    """Profile each column named in ``kinds`` ("numeric" or "categorical")."""
    return {
        column: categorical_profile(df[column])
        if kind == "categorical"
        else numeric_profile(pd.to_numeric(df[column], errors="coerce").to_numpy(np.float64, na_value=np.nan), compact)
        for column, kind in kinds.items()
    }
