"""Canary routing and health, without a server."""

from __future__ import annotations

import numpy as np
from fsml.serving.canary import CanaryHealth, CanaryLimits, routed

LIMITS = CanaryLimits(min_rows=100, max_error_rate=0.01, max_p99_ms=20.0, max_score_distance=0.5, score_scale=0.1)
RNG = np.random.default_rng(4)


def test_one_customer_sees_one_model_and_the_fraction_holds() -> None:
    keys = range(1, 20_001)
    chosen = {k for k in keys if routed(k, 0.1)}
    assert abs(len(chosen) / 20_000 - 0.1) < 0.01
    assert all(routed(k, 0.1) for k in list(chosen)[:100])  # the same answer every time
    assert chosen <= {k for k in keys if routed(k, 0.3)}  # a bigger canary only adds customers
    assert not any(routed(k, 0.0) for k in keys) and not routed(None, 1.0)


def _healthy(rows: int = 500) -> CanaryHealth:
    health = CanaryHealth(LIMITS)
    for champion in RNG.beta(0.5, 10, rows):
        health.answered(champion * 1.05, champion)
        health.timed(0.002)
    return health


def test_a_healthy_canary_runs_on() -> None:
    assert _healthy().verdict() is None
    assert CanaryHealth(LIMITS).verdict() is None  # no rows: nothing to judge


def test_errors_latency_or_other_scores_roll_it_back() -> None:
    failing = _healthy()
    failing.failed(20)
    assert failing.verdict().startswith("error rate")
    slow = _healthy()
    for _ in range(50):
        slow.timed(0.050)
    assert slow.verdict().startswith("p99")
    other = CanaryHealth(LIMITS)
    for champion in RNG.beta(0.5, 10, 500):
        other.answered(min(champion + 0.2, 1.0), champion)
    assert "from the champion's on the same rows" in other.verdict()
