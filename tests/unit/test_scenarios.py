"""The scenario knobs change what they say, from when they say, and nothing else."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from fsml.examples.fraud import scenarios
from fsml.examples.fraud.synthetic import GeneratorConfig, generate

CONFIG = GeneratorConfig(customers=150, merchants=30, days=20, seed=3)
DATA = generate(CONFIG)
SINCE = CONFIG.start + timedelta(days=12)


def _split(frame: pd.DataFrame, column: str = "timestamp") -> tuple[pd.DataFrame, pd.DataFrame]:
    after = pd.to_datetime(frame[column], utc=True) >= pd.Timestamp(SINCE)
    return frame[~after], frame[after]


def test_raw_breaks_touch_only_rows_after_the_change() -> None:
    tx = DATA.transactions
    changed = scenarios.unit_change(tx, SINCE, 100.0)
    before, after = _split(changed)
    assert before.equals(_split(tx)[0])
    np.testing.assert_allclose(after["amount"], np.round(_split(tx)[1]["amount"] * 100, 2))
    permuted = scenarios.permuted_labels(tx, SINCE, seed=1)
    assert _split(permuted)[0].equals(_split(tx)[0])
    assert permuted["is_fraud"].sum() == tx["is_fraud"].sum()
    assert not _split(permuted)[1]["is_fraud"].equals(_split(tx)[1]["is_fraud"])
    stopped = scenarios.fraud_stops(tx, SINCE)
    assert _split(stopped)[1]["is_fraud"].sum() == 0 and _split(stopped)[0].equals(_split(tx)[0])


def test_the_merchant_mix_shift_drops_whole_rows_of_the_thinned_categories() -> None:
    thinned = ("grocery", "restaurant")
    shifted = scenarios.merchant_mix_shift(DATA, SINCE, thinned, keep=0.3, seed=2)
    category = DATA.merchants.set_index("merchant_id")["category"]
    kept = shifted.transactions.merge(DATA.transactions, on=list(DATA.transactions.columns))
    assert len(kept) == len(shifted.transactions)  # every row left is an original row, whole
    before, after = _split(shifted.transactions)
    assert len(before) == len(_split(DATA.transactions)[0])
    share = after["merchant_id"].map(category).isin(thinned).mean()
    original = _split(DATA.transactions)[1]["merchant_id"].map(category).isin(thinned).mean()
    assert share < original * 0.6


def test_segment_drift_scales_one_category_only() -> None:
    drifted = scenarios.segment_drift(DATA, SINCE, "grocery", 2.0).transactions
    category = DATA.transactions["merchant_id"].map(DATA.merchants.set_index("merchant_id")["category"])
    after = (pd.to_datetime(DATA.transactions["timestamp"], utc=True) >= pd.Timestamp(SINCE)).to_numpy()
    hit = after & (category == "grocery").to_numpy()
    ratio = drifted["amount"].to_numpy() / DATA.transactions["amount"].to_numpy()
    assert np.allclose(ratio[hit], 2.0, rtol=0.01) and np.allclose(ratio[~hit], 1.0)


def test_feature_table_breaks() -> None:
    days = pd.date_range(CONFIG.start, periods=20, freq="D", tz="UTC")
    table = pd.DataFrame({"event_timestamp": np.repeat(days, 100), "credit_limit": np.arange(2_000.0) + 500})
    nulled = scenarios.null_column(table, "credit_limit", SINCE, share=0.5, seed=1)
    before, after = _split(nulled, "event_timestamp")
    assert before["credit_limit"].notna().all()
    assert after["credit_limit"].isna().mean() == pytest.approx(0.5, abs=0.05)
    stuck = scenarios.stuck_value(table, "credit_limit", SINCE, 5_000.0)
    assert (_split(stuck, "event_timestamp")[1]["credit_limit"] == 5_000.0).all()
    assert table["credit_limit"].notna().all() and table["credit_limit"].iloc[-1] == 2_499.0  # input untouched
