"""Statistics shared by training and monitoring."""

from __future__ import annotations

import numpy as np
import pandas as pd


def design_effect(hits: np.ndarray, clusters: np.ndarray | None) -> float:
    """Variance of a share with rows grouped by cluster (an entity), over its binomial variance.

    Events come in bursts from one entity (a compromised card makes a dozen fraudulent payments
    in an hour); a binomial variance counts each as independent evidence. At least 1.
    """
    hits = np.asarray(hits, dtype=np.float64)
    n = len(hits)
    p = float(hits.mean()) if n else 0.0
    if clusters is None or n < 2 or p in (0.0, 1.0):
        return 1.0
    codes, uniques = pd.factorize(pd.Series(clusters), use_na_sentinel=False)
    groups = len(uniques)
    if groups < 2:
        return 1.0
    residual = np.bincount(codes, weights=hits - p, minlength=groups)
    clustered = (residual**2).sum() / n**2 * groups / (groups - 1)
    return max(1.0, float(clustered / (p * (1 - p) / n)))


def entity_days(keys: np.ndarray | pd.Series, times: pd.Series) -> np.ndarray:
    """One cluster per entity and UTC day: the rows of one entity on one day share fate (a
    fraud episode is a burst of one card's payments within hours)."""
    days = pd.to_datetime(pd.Series(times).reset_index(drop=True), utc=True).dt.floor("D")
    frame = pd.DataFrame({"key": pd.Series(np.asarray(keys, dtype=object)), "day": days})
    return frame.groupby(["key", "day"], sort=False, dropna=False).ngroup().to_numpy()
