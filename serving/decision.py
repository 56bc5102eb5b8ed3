"""The decision for a score, and what it is when the store knew nothing about the row.

A row whose stored features are all missing or stale (a flushed store, an entity never seen) is
scored on request fields alone: the score says little, so the decision is the policy of
``FSML_MISSING_FEATURES_DECISION``: ``review`` by default, ``flag``, or ``pass`` for a service that
chooses to fail open. Online answers and batch scoring apply the same rule.
"""

from __future__ import annotations

import numpy as np


def decide(score: float, threshold: float, all_missing: bool, policy: str) -> str:
    if all_missing:
        return policy
    return "flag" if score >= threshold else "pass"


def decide_many(scores: np.ndarray, threshold: float, all_missing: np.ndarray, policy: str) -> np.ndarray:
    return np.where(all_missing, policy, np.where(scores >= threshold, "flag", "pass"))
