"""Feature pipeline: point-in-time correctness against raw data, and validation before writes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fsml.features.build import FEATURE_SPECS, build_features
from fsml.training.dataset import Windows, build_training_set

from fsml.errors import FsmlError, ValidationFailed
from fsml.featurestore import describe_service, open_store
from tests.conftest import AS_OF, World

pytestmark = pytest.mark.integration

WINDOWS = {"1h": pd.Timedelta(hours=1), "24h": pd.Timedelta(days=1), "7d": pd.Timedelta(days=7)}


@pytest.fixture(scope="module")
def training_frame(world: World) -> pd.DataFrame:
    store = open_store(world.settings)
    spec = describe_service(store, world.settings.feature_service)
    windows = Windows.ending_at(AS_OF, 30, 10, 10)
    return build_training_set(store, spec, windows).frame


@pytest.fixture(scope="module")
def raw(world: World) -> pd.DataFrame:
    return pd.read_parquet(world.settings.raw_dir / "transactions.parquet")


def _recompute_customer(raw: pd.DataFrame, customer: int, t: pd.Timestamp) -> dict[str, float]:
    """Window statistics from raw transactions strictly before ``t``, written independently."""
    own = raw[(raw["customer_id"] == customer) & (raw["timestamp"] < t)]
    out = {}
    for name, width in WINDOWS.items():
        w = own[own["timestamp"] >= t - width]
        out[f"txn_count_{name}"] = len(w)
        out[f"amount_sum_{name}"] = w["amount"].sum()
        out[f"amount_max_{name}"] = w["amount"].max() if len(w) else np.nan
        out[f"distinct_merchants_{name}"] = w["merchant_id"].nunique()
        out[f"amount_mean_{name}"] = w["amount"].mean() if len(w) else np.nan
        out[f"amount_std_{name}"] = w["amount"].std(ddof=1) if len(w) > 1 else np.nan
        out[f"night_share_{name}"] = (w["timestamp"].dt.hour < 6).mean() if len(w) else np.nan
    return out


def test_customer_windows_use_only_earlier_transactions(training_frame: pd.DataFrame, raw: pd.DataFrame) -> None:
    sample = training_frame.sample(300, random_state=1)
    prefix = "customer_transaction_windows__"
    columns = [c for c in training_frame.columns if c.startswith(prefix)]
    checked = 0
    for _, row in sample.iterrows():
        expected = _recompute_customer(raw, row["customer_id"], row["event_timestamp"])
        if pd.isna(row[prefix + "txn_count_7d"]):
            # No row within the view's TTL: the customer was quiet for over 15 days.
            assert expected["txn_count_7d"] == 0
            continue
        for column in columns:
            name = column.removeprefix(prefix)
            np.testing.assert_allclose(
                row[column],
                expected[name],
                rtol=1e-9,
                atol=1e-9,
                err_msg=f"{name} at {row['transaction_id']}",
            )
        checked += 1
    assert checked > 250


def test_merchant_fraud_rate_uses_only_labels_known_at_the_snapshot(
    training_frame: pd.DataFrame, raw: pd.DataFrame
) -> None:
    sample = training_frame.sample(300, random_state=2)
    for _, row in sample.iterrows():
        t = row["event_timestamp"]
        tau = t.floor("D")  # the daily snapshot a point-in-time lookup must pick
        m = raw[
            (raw["merchant_id"] == row["merchant_id"])
            & (raw["timestamp"] < tau)
            & (raw["timestamp"] >= tau - pd.Timedelta(days=30))
        ]
        known = m[m["label_available_at"] <= tau]
        assert row["merchant_risk__merchant_txn_count_30d"] == len(m)
        assert row["merchant_risk__merchant_labelled_count_30d"] == len(known)
        expected = known["is_fraud"].mean() if len(known) else np.nan
        np.testing.assert_allclose(row["merchant_risk__merchant_fraud_rate_30d"], expected, rtol=1e-12)
        assert (known["label_available_at"] <= t).all()


def test_request_time_features_come_from_the_row(training_frame: pd.DataFrame) -> None:
    df = training_frame
    assert (df["transaction_context__hour_of_day"] == df["timestamp"].dt.hour).all()
    assert (df["transaction_context__is_night"] == (df["timestamp"].dt.hour < 6)).all()
    ratio = df["amount"] / df["customer_transaction_windows__amount_mean_7d"]
    np.testing.assert_allclose(df["transaction_context__amount_to_mean_7d"], ratio, rtol=1e-12)


def test_feature_tables_match_the_feast_views(world: World) -> None:
    store = open_store(world.settings)
    types = {"Int64": "BIGINT", "Float64": "DOUBLE", "String": "VARCHAR"}
    for view in store.list_feature_views():
        spec = FEATURE_SPECS[view.name]
        declared = {c.name: c.type for c in spec.columns}
        for field in view.features:
            assert declared[field.name] == types[str(field.dtype)], f"{view.name}.{field.name}"


def _digests(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in directory.iterdir()}


def _corrupt(raw_dir: Path, change) -> None:
    path = raw_dir / "transactions.parquet"
    df = pd.read_parquet(path)
    change(df).to_parquet(path, index=False)


def test_corrupted_batch_is_rejected_and_tables_stay_intact(own_world: World) -> None:
    settings = own_world.settings
    before_target, before = settings.features_dir.resolve(), _digests(settings.features_dir)

    def break_it(df: pd.DataFrame) -> pd.DataFrame:
        df = df.copy()
        df.loc[0, "amount"] = -5.0
        df.loc[1, "merchant_id"] = 10_000
        df.loc[2, "transaction_id"] = df.loc[3, "transaction_id"]
        df.loc[4, "label_available_at"] = df.loc[4, "timestamp"] - pd.Timedelta(days=1)
        return df

    _corrupt(settings.raw_dir.resolve(), break_it)
    with pytest.raises(ValidationFailed) as caught:
        build_features(settings.raw_dir, settings.features_dir)
    failures = "\n".join(caught.value.failures)
    for check in (
        "transactions.amount range",
        "transactions.known_merchant",
        "transactions.duplicate_keys",
        "transactions.label_after_transaction",
    ):
        assert check in failures
    assert settings.features_dir.resolve() == before_target
    assert _digests(settings.features_dir) == before


def test_missing_and_unreadable_raw_files_are_named(own_world: World) -> None:
    raw_dir = own_world.settings.raw_dir.resolve()
    (raw_dir / "merchants.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(FsmlError, match=r"cannot read .*merchants.parquet"):
        build_features(own_world.settings.raw_dir, own_world.settings.features_dir)
    (raw_dir / "merchants.parquet").unlink()
    with pytest.raises(FsmlError, match=r"missing raw table .*merchants.parquet"):
        build_features(own_world.settings.raw_dir, own_world.settings.features_dir)
