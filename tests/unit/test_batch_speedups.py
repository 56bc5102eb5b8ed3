"""The batch-scoring shortcuts give what the plain computations give."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from fsml.model import decision_array, decisions
from fsml.stores.search import _search_sorted


def test_searches_in_key_order_find_the_same_positions() -> None:
    rng = np.random.default_rng(7)
    for keys, rows in ((3, 5_000), (300, 50_000), (40_000, 5_000), (50, 100)):
        codes = rng.integers(-1, keys, rows)
        table = np.sort(rng.integers(-(10**6), keys * 10**6, rows // 2 + 1))
        wanted = codes * 10**6 + rng.integers(0, 10**6, rows)
        found = _search_sorted(table, wanted, codes, keys)
        assert np.array_equal(found, np.searchsorted(table, wanted, side="right"))


def test_decisions_in_arrow_match_the_shared_rule() -> None:
    scores = np.array([0.9, 0.1, 0.5, np.nan, 0.7, 0.2])
    missing = np.array([False, False, False, False, True, True])
    for policy in ("review", "flag", "pass"):
        column = decision_array(scores, 0.5, missing, policy)
        assert column.type == pa.string()
        assert column.to_pylist() == decisions(scores, 0.5, missing, policy).tolist()
    assert decision_array(scores, 0.5).to_pylist() == decisions(scores, 0.5).tolist()
