"""The promotion rule, both ways, without a registry."""

from __future__ import annotations

import math

import pytest
from fsml.training.promote import Score, decide

FLOORS = {"margin": 0.01, "min_pr_auc": 0.2, "min_roc_auc": 0.7}


def _decide(challenger: Score, champion: Score | None, force: bool = False) -> tuple[bool, str]:
    return decide(challenger, champion, FLOORS["margin"], FLOORS["min_pr_auc"], FLOORS["min_roc_auc"], force)


def test_better_challenger_is_promoted() -> None:
    ok, reason = _decide(Score("2", 0.62, 0.95), Score("1", 0.60, 0.95))
    assert ok and "0.6200 >= champion v1 0.6000 + margin 0.01" in reason


def test_challenger_within_the_margin_is_not_promoted() -> None:
    ok, reason = _decide(Score("2", 0.605, 0.95), Score("1", 0.60, 0.95))
    assert not ok and "<" in reason


@pytest.mark.parametrize(("pr_auc", "roc_auc", "expected"), [(0.3, 0.9, True), (0.1, 0.9, False), (0.3, 0.6, False)])
def test_first_champion_needs_the_floors(pr_auc: float, roc_auc: float, expected: bool) -> None:
    ok, reason = _decide(Score("1", pr_auc, roc_auc), None)
    assert ok is expected and reason.startswith("first champion")


def test_force_overrides_but_not_for_the_champion_itself() -> None:
    assert _decide(Score("2", 0.1, 0.5), Score("1", 0.9, 0.9), force=True) == (
        True,
        "forced with --force",
    )
    ok, reason = _decide(Score("1", 0.9, 0.9), Score("1", 0.9, 0.9), force=True)
    assert not ok and "already the champion" in reason


def test_no_positives_means_no_promotion() -> None:
    ok, reason = _decide(Score("2", math.nan, math.nan), Score("1", 0.5, 0.9))
    assert not ok and "no positive labels" in reason
