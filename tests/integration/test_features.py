"""Feature pipeline: point-in-time correctness against the pushed rows, checks derived from the
repo, validation before writes, incremental builds equal to full ones."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fsml.features.build import build_features
from fsml.features.validation import view_spec
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
    """The generated transactions with their labels (pushed apart, joined here by hand)."""
    tx = pd.read_parquet(world.settings.raw_dir / "transactions.parquet")
    return tx.merge(pd.read_parquet(world.settings.raw_dir / "labels.parquet"), on="transaction_id")


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


def test_checks_come_from_the_repo(world: World) -> None:
    store = open_store(world.settings)
    risk = view_spec(store.get_feature_view("merchant_risk"))
    assert dict(risk.rules) == {"fraud_within_labelled": "merchant_fraud_count_30d <= merchant_labelled_count_30d"}
    rate = next(c for c in risk.columns if c.name == "merchant_fraud_rate_30d")
    assert (rate.min, rate.max, rate.max_null_rate) == (0, 1, 1)
    windows = view_spec(store.get_stream_feature_view("customer_transaction_windows"))
    columns = {c.name: c for c in windows.columns}
    assert columns["txn_count_7d"].min == 0 and columns["txn_count_7d"].max_null_rate == 0
    assert columns["amount_mean_7d"].max_null_rate == 1  # a mean over an empty window has no value
    assert windows.key == ("customer_id", "event_timestamp")


def _digests(directory: Path) -> dict[str, str]:
    return {p.relative_to(directory).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in directory.rglob("*") if p.is_file()}  # fmt: skip


def test_bad_pushed_rows_are_rejected_and_tables_stay_intact(own_world: World) -> None:
    """Rows that reached the offline log without the push API (a file copied in by hand)."""
    settings = own_world.settings
    before_target, before = settings.features_dir.resolve(), _digests(settings.features_dir)
    events = settings.data_dir / "events" / "transactions"
    first = sorted(events.glob("date=*/*.parquet"))[-1]
    bad = pd.read_parquet(first).head(3).copy()
    bad.loc[0, "amount"] = -5.0
    bad.loc[1, "customer_id"] = -1
    bad.to_parquet(first.parent / "part-by-hand.parquet", index=False)
    with pytest.raises(ValidationFailed) as caught:
        build_features(settings, until=AS_OF)
    failures = "\n".join(caught.value.failures)
    for check in ("transactions.amount range", "transactions.customer_id range", "transactions.duplicate_keys"):
        assert check in failures
    assert settings.features_dir.resolve() == before_target
    assert _digests(settings.features_dir) == before


def test_missing_and_unreadable_reference_tables_are_named(own_world: World) -> None:
    raw_dir = own_world.settings.raw_dir.resolve()
    (raw_dir / "merchants.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(FsmlError, match=r"cannot read .*merchants.parquet"):
        build_features(own_world.settings, until=AS_OF, full=True)
    (raw_dir / "merchants.parquet").unlink()
    with pytest.raises(FsmlError, match=r"missing reference table .*merchants.parquet"):
        build_features(own_world.settings, until=AS_OF, full=True)


def test_incremental_build_equals_a_full_build(own_world: World) -> None:
    """New pushed rows (late ones included) and a later snapshot day, built incrementally, give
    the same point-in-time values as a full build of everything."""
    import asyncio

    from fsml.serving.push import ingestor
    from fsml.serving.redis_client import RedisClient

    url = own_world.settings.redis_url.rsplit("/", 1)[0] + "/9"  # ids of its own: not the world's
    settings = own_world.settings.model_copy(update={"redis_url": url})
    rng = np.random.default_rng(5)
    n = 300
    moments = AS_OF - pd.to_timedelta(rng.uniform(0, 36, n), unit="h")  # the last day and a half: some late
    rows = pd.DataFrame({"transaction_id": np.arange(10**9, 10**9 + n), "customer_id": rng.integers(1, 400, n),
                         "merchant_id": rng.integers(1, 80, n), "amount": np.round(rng.uniform(1, 300, n), 2),
                         "timestamp": moments})  # fmt: skip

    async def push() -> None:
        client = RedisClient(settings.redis_url, timeout=30)
        await ingestor(settings, client).push("transactions", rows.to_dict("records"), online=False)
        await client.aclose()

    asyncio.run(push())
    later = AS_OF + pd.Timedelta(days=1)
    assert build_features(settings, until=later).mode == "incremental"
    store = open_store(settings)
    spec = describe_service(store, settings.feature_service)
    probe = rows.sample(150, random_state=1)[["customer_id", "merchant_id", "amount", "timestamp"]]
    probe = probe.assign(event_timestamp=probe["timestamp"] + pd.Timedelta(minutes=30), i=np.arange(len(probe)))
    views = [f.column.replace("__", ":", 1) for f in spec.features if not f.on_demand]
    incremental = store.get_historical_features(entity_df=probe, features=views).to_df().sort_values("i")
    assert build_features(settings, until=later, full=True).mode == "full"
    full = store.get_historical_features(entity_df=probe, features=views).to_df().sort_values("i")
    pd.testing.assert_frame_equal(
        incremental.reset_index(drop=True), full.reset_index(drop=True), check_exact=False, rtol=1e-9
    )
