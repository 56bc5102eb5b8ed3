"""The generator: determinism, shape of the world, fraud and label behaviour, drift knobs."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fsml.examples.fraud.synthetic import GeneratorConfig, generate, save

from tests.conftest import SMALL


def _digest(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def test_same_arguments_give_the_same_bytes(tmp_path: Path) -> None:
    save(generate(SMALL), SMALL, tmp_path / "a")
    save(generate(SMALL), SMALL, tmp_path / "b")
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")


def test_another_seed_gives_other_data() -> None:
    a = generate(SMALL).transactions
    b = generate(replace(SMALL, seed=SMALL.seed + 1)).transactions
    assert not a["amount"].head(100).equals(b["amount"].head(100))


def test_tables_have_the_contracted_types_and_ids() -> None:
    data = generate(SMALL)
    tx = data.transactions
    assert str(tx["timestamp"].dtype) == "datetime64[us, UTC]"
    assert str(tx["label_available_at"].dtype) == "datetime64[us, UTC]"
    for table, key in (
        (data.customers, "customer_id"),
        (data.merchants, "merchant_id"),
        (tx, "transaction_id"),
    ):
        assert table[key].dtype == np.int64
        assert table[key].min() == 1 and table[key].is_unique
    assert tx["customer_id"].between(1, SMALL.customers).all()
    assert tx["merchant_id"].between(1, SMALL.merchants).all()
    assert tx["timestamp"].is_monotonic_increasing


def test_data_ends_at_the_end_date_and_labels_arrive_later() -> None:
    tx = generate(SMALL).transactions
    end = pd.Timestamp(SMALL.end_date, tz="UTC")
    assert tx["timestamp"].max() < end
    assert tx["timestamp"].min() >= end - pd.Timedelta(days=SMALL.days)
    delay = tx["label_available_at"] - tx["timestamp"]
    assert delay.min() >= pd.Timedelta(hours=12)
    assert delay.quantile(0.9) > pd.Timedelta(days=7)  # days to weeks
    assert (tx["label_available_at"] > end).any()  # the newest labels are not known yet


def test_fraud_rate_and_fraud_behaviour() -> None:
    tx = generate(replace(GeneratorConfig(), end_date=SMALL.end_date)).transactions
    assert 0.005 <= tx["is_fraud"].mean() <= 0.02
    fraud, legit = tx[tx["is_fraud"] == 1], tx[tx["is_fraud"] == 0]
    night = lambda df: (df["timestamp"].dt.hour < 6).mean()  # noqa: E731
    assert night(fraud) > 2 * night(legit)
    assert fraud["amount"].median() > 2 * legit["amount"].median()


def test_drift_inflates_amounts_and_adds_card_testing() -> None:
    base = replace(SMALL, customers=1_000)
    drifted = generate(replace(base, drift_start_day=40)).transactions
    plain = generate(base).transactions
    cut = pd.Timestamp(SMALL.end_date, tz="UTC") - pd.Timedelta(days=SMALL.days - 40)
    assert (plain["fraud_pattern"] != "card_testing").all()
    after = drifted[drifted["timestamp"] >= cut]
    testing = after[after["fraud_pattern"] == "card_testing"]
    assert len(testing) > 50 and testing["amount"].max() <= 5.0
    assert (drifted[drifted["timestamp"] < cut]["fraud_pattern"] != "card_testing").all()
    legit_after = after[after["is_fraud"] == 0]["amount"].median()
    legit_plain = plain[(plain["timestamp"] >= cut) & (plain["is_fraud"] == 0)]["amount"].median()
    assert legit_after > 1.2 * legit_plain


@pytest.mark.parametrize("bad", [{"customers": 0}, {"days": 0}, {"drift_start_day": 999}])
def test_invalid_arguments_are_rejected(bad: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        replace(SMALL, **bad)
