"""Distribution profiles of features and scores: the reference the drift monitor compares with.

A numeric profile keeps 101 quantiles (enough for KS and Wasserstein distances against new data
without storing the data), decile bins with their shares (for PSI), the null rate and the range.
A categorical profile keeps the share of each frequent value. Both fit in a few KB of JSON.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

QUANTILES = np.linspace(0.0, 1.0, 101)
PSI_BINS = 10
MAX_CATEGORIES = 50
OTHER = "__other__"


def numeric_profile(values: np.ndarray) -> dict[str, Any]:
    values = np.asarray(values, dtype=np.float64)
    present = values[~np.isnan(values)]
    profile: dict[str, Any] = {
        "kind": "numeric",
        "count": int(len(values)),
        "null_rate": float(1 - len(present) / len(values)) if len(values) else 0.0,
    }
    if len(present) == 0:
        return profile | {"quantiles": [], "bin_edges": [], "bin_fractions": []}
    edges = np.unique(np.quantile(present, np.linspace(0, 1, PSI_BINS + 1)[1:-1]))
    return profile | {
        "min": float(present.min()),
        "max": float(present.max()),
        "mean": float(present.mean()),
        "std": float(present.std()),
        "quantiles": np.quantile(present, QUANTILES).tolist(),
        "bin_edges": edges.tolist(),
        "bin_fractions": bin_fractions(present, edges).tolist(),
    }


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


def profile_frame(df: pd.DataFrame, kinds: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Profile each column named in ``kinds`` ("numeric" or "categorical")."""
    return {
        column: categorical_profile(df[column])
        if kind == "categorical"
        else numeric_profile(
            pd.to_numeric(df[column], errors="coerce").to_numpy(np.float64, na_value=np.nan)
        )
        for column, kind in kinds.items()
    }
