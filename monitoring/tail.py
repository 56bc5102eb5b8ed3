"""The top of the score distribution, where decisions are made, watched on its own.

The score's Wasserstein distance leaves out the extreme percentiles (heavy tails would decide
it), so a change confined to the top 1 % of scores, where a fraud model's flags are, barely
moves it. Two proportions are watched instead, against the champion's validation and test
windows (scores out of sample, as live ones are): the decision rate (share at or above the threshold) and the share
above the test window's 99th percentile. Either is flagged when it moved by a factor
(``FSML_DRIFT_TAIL_RATIO``) and by more than chance (``FSML_DRIFT_TAIL_Z`` standard errors).

The standard error is clustered by entity (the first join key): high scores come in bursts from
one customer (a compromised card makes a dozen flagged payments in an hour), and a binomial error
would count each as independent evidence. The design effect measured on the window is applied
to the reference's error too.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from fsml.stats import design_effect


@dataclass
class Proportion:
    name: str
    reference: float
    current: float
    rows: int
    ratio: float
    z: float
    flagged: bool

    def reason(self) -> str:
        return f"{self.name} {self.reference:.2%} -> {self.current:.2%} (x{self.ratio:.2f}, z {self.z:+.1f})"


def proportion(
    name: str,
    hits: np.ndarray,
    reference: float,
    reference_rows: int,
    clusters: np.ndarray | None,
    ratio_limit: float,
    z_limit: float,
) -> Proportion:
    n = len(hits)
    current = float(hits.mean()) if n else 0.0
    deff = design_effect(hits, clusters)
    # variance under "nothing changed": the reference share, in both samples
    variance = deff * reference * (1 - reference) * (1 / max(n, 1) + 1 / max(reference_rows, 1))
    z = (current - reference) / math.sqrt(variance) if variance > 0 else 0.0
    ratio = current / max(reference, 1e-9) if reference > 0 or current > 0 else 1.0  # finite: JSON
    moved = ratio >= ratio_limit or ratio <= 1 / ratio_limit
    return Proportion(name, reference, current, n, ratio, z, bool(n and moved and abs(z) >= z_limit))


def tail_drift(
    score: np.ndarray,
    tail: dict[str, Any],
    clusters: np.ndarray | None,
    ratio_limit: float,
    z_limit: float,
) -> dict[str, Any]:
    """Decision rate and upper-tail share of ``score`` against the card's ``score_tail``."""
    if not tail:
        return {"status": "no tail reference in the model card: retrain to watch the tail", "flagged": False}
    score = np.asarray(score, dtype=np.float64)
    measures = [
        proportion(
            "decision rate",
            score >= tail["threshold"],
            tail["decision_rate"],
            tail["rows"],
            clusters,
            ratio_limit,
            z_limit,
        ),
        proportion(
            f"share above the reference p{tail['tail_level'] * 100:g}",
            score > tail["tail_cut"],
            tail["tail_share"],
            tail["rows"],
            clusters,
            ratio_limit,
            z_limit,
        ),
    ]
    flagged = [m for m in measures if m.flagged]
    quantiles = {f"p{q}": float(np.quantile(score, q / 100)) if len(score) else None for q in (95, 99)}
    return {
        "status": "measured" if len(score) else "no scores",
        "flagged": bool(flagged),
        "reasons": [m.reason() for m in flagged],
        "measures": [asdict(m) for m in measures],
        "quantiles": {k: {"reference": tail[k], "current": v} for k, v in quantiles.items()},
    }
