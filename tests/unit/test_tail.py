"""The decision rate and the upper tail: what the score distance cannot see."""

from __future__ import annotations

import numpy as np
from fsml.monitoring.drift import Thresholds, numeric_drift
from fsml.monitoring.tail import proportion, tail_drift
from fsml.training.references import score_tail

from fsml.profiles import numeric_profile

RNG = np.random.default_rng(3)
THRESHOLD = 0.5


def _scores(n: int) -> np.ndarray:
    """A fraud model's scores: most near zero, a thin upper tail."""
    return RNG.beta(0.3, 12.0, n)


def _judge(current: np.ndarray, reference: np.ndarray, clusters: np.ndarray | None = None) -> dict:
    return tail_drift(current, score_tail(reference, THRESHOLD), clusters, ratio_limit=1.5, z_limit=3.0)


def test_a_change_confined_to_the_top_percent_is_flagged_where_the_distance_sees_nothing() -> None:
    reference, current = _scores(200_000), _scores(50_000)
    top = current >= np.quantile(current, 0.99)
    moved = current.copy()
    moved[top] = np.median(current)  # the example: the top 1 % set to the median
    distance = numeric_drift("score", numeric_profile(reference), moved, Thresholds(wasserstein=0.1))
    assert not distance.drifted  # the distance leaves out the extreme percentiles
    verdict = _judge(moved, reference)
    assert verdict["flagged"]
    assert any(r.startswith("share above the reference p99") for r in verdict["reasons"])


def test_a_drift_free_window_is_not_flagged() -> None:
    reference = _scores(200_000)
    for _ in range(5):
        assert not _judge(_scores(20_000), reference)["flagged"]


def test_one_entity_s_burst_is_not_taken_for_a_shift() -> None:
    """Thirty flagged payments of one card in a small window: binomially a 6-sigma rise of the
    decision rate; clustered by entity, one event."""
    hits = np.zeros(2_000, dtype=bool)
    hits[:20] = True  # the usual 1 %
    hits[20:50] = True  # one card's burst
    clusters = np.arange(2_000)
    clusters[20:50] = -1
    independent = proportion("decision rate", hits, 0.01, 20_000, None, 1.5, 3.0)
    clustered = proportion("decision rate", hits, 0.01, 20_000, clusters, 1.5, 3.0)
    assert independent.flagged and independent.z > 6
    assert not clustered.flagged and clustered.z < 3
