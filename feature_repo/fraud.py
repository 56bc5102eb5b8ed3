"""Feature definitions of the card-fraud example: entities, sources, views and services.

Only declarations live here. Applications push transactions and labels (the ``transactions``
and ``labels`` push sources); ``fsml features build`` computes the offline tables under
``$FSML_HOME/data/features`` from them and from the reference tables; serving computes the
window features from the pushed events themselves. Training and serving refer to a feature
service by name and never copy feature lists. The ``fsml.*`` tags tell the platform what it
cannot infer (row ids, labels, checks, the SQL of a snapshot view), so any Feast repo that
carries them is trained, served and monitored without code changes.
"""

import os
from datetime import timedelta
from pathlib import Path

from feast import (
    Entity,
    FeatureService,
    FeatureView,
    Field,
    FileSource,
    PushSource,
    RequestSource,
    ValueType,
)
from feast.aggregation import Aggregation
from feast.on_demand_feature_view import on_demand_feature_view
from feast.stream_feature_view import stream_feature_view
from feast.types import Float64, Int64, String, UnixTimestamp

DATA = Path(os.environ.get("FSML_HOME", ".fsml")).resolve() / "data"
HOUR, DAY, WEEK = timedelta(hours=1), timedelta(days=1), timedelta(days=7)


def _table(name: str) -> FileSource:
    """A table that ``fsml features build`` writes, in parts: new rows come as new files."""
    return FileSource(
        name=f"{name}_source",
        path=str(DATA / "features" / name / "*.parquet"),
        timestamp_field="event_timestamp",
        created_timestamp_column="created_timestamp",
    )


def _log(name: str, timestamp: str) -> FileSource:
    """Where a push source's rows land: Parquet parts in date partitions."""
    return FileSource(
        name=f"{name}_log", path=str(DATA / "events" / name / "*" / "*.parquet"), timestamp_field=timestamp
    )


# A card holder; transactions are scored for the customer who made them.
customer = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.INT64)

# The merchant where a transaction happens.
merchant = Entity(name="merchant", join_keys=["merchant_id"], value_type=ValueType.INT64)

# One card transaction; labels refer to it.
transaction = Entity(name="transaction", join_keys=["transaction_id"], value_type=ValueType.INT64)

# Reference tables exported by other systems, read by the snapshot views' SQL.
customers = FileSource(
    name="customers", path=str(DATA / "raw" / "customers.parquet"), timestamp_field="account_opened_at"
)
merchants = FileSource(name="merchants", path=str(DATA / "raw" / "merchants.parquet"), timestamp_field="onboarded_at")

# What the application knows when a card is used, pushed as it happens (or with `record: true`
# on a prediction). Pushed rows land in date partitions: data/events/transactions/date=*/.
transactions = PushSource(
    name="transactions",
    batch_source=_log("transactions", "timestamp"),
    description="Card transactions; their labels arrive later through the labels source.",
    tags={"fsml.id": "transaction_id", "fsml.labels": "labels"},
)

# Chargebacks and confirmations, pushed when they become known (days to weeks later).
labels = PushSource(
    name="labels",
    batch_source=_log("labels", "label_available_at"),
    description="Fraud labels by transaction id; label_available_at is when the label became known.",
    tags={"fsml.id": "transaction_id", "fsml.label": "is_fraud"},
)

# The pushed rows as views: their schemas are what a push is checked against.
transaction_log = FeatureView(
    name="transaction_log",
    entities=[transaction],
    source=transactions,
    online=False,
    schema=[
        Field(name="customer_id", dtype=Int64, tags={"fsml.min": "1"}),
        Field(name="merchant_id", dtype=Int64, tags={"fsml.min": "1"}),
        Field(name="amount", dtype=Float64, tags={"fsml.min": "0"}),
    ],
    tags={"owner": "fraud"},
)
label_log = FeatureView(
    name="label_log",
    entities=[transaction],
    source=labels,
    online=False,
    schema=[Field(name="is_fraud", dtype=Int64, tags={"fsml.min": "0", "fsml.max": "1"})],
    tags={"owner": "fraud"},
)

# Daily CRM snapshot of the customer's profile.
customer_profile = FeatureView(
    name="customer_profile",
    entities=[customer],
    ttl=timedelta(days=2),
    schema=[
        Field(name="age", dtype=Int64, tags={"fsml.min": "18", "fsml.max": "120"}),
        Field(name="account_tenure_days", dtype=Int64, tags={"fsml.min": "0"}),
        Field(name="credit_limit", dtype=Float64, tags={"fsml.min": "0"}),
        Field(name="home_region", dtype=String),
    ],
    source=_table("customer_profile"),
    tags={"owner": "fraud", "cadence": "daily", "fsml.sql": "sql/customer_profile.sql"},
)


# The customer's card activity over sliding windows, declared once: each aggregation is a feature
# of the stream view below, counts as integers and the rest as floats.
WINDOWS = [
    Aggregation(name="txn_count_1h", column="amount", function="count", time_window=HOUR),
    Aggregation(name="amount_sum_1h", column="amount", function="sum", time_window=HOUR),
    Aggregation(name="txn_count_24h", column="amount", function="count", time_window=DAY),
    Aggregation(name="amount_sum_24h", column="amount", function="sum", time_window=DAY),
    Aggregation(name="amount_max_24h", column="amount", function="max", time_window=DAY),
    Aggregation(name="distinct_merchants_24h", column="merchant_id", function="count_distinct", time_window=DAY),
    Aggregation(name="txn_count_7d", column="amount", function="count", time_window=WEEK),
    Aggregation(name="amount_mean_7d", column="amount", function="mean", time_window=WEEK),
    Aggregation(name="amount_std_7d", column="amount", function="stddev", time_window=WEEK),
    Aggregation(name="amount_max_7d", column="amount", function="max", time_window=WEEK),
    Aggregation(name="distinct_merchants_7d", column="merchant_id", function="count_distinct", time_window=WEEK),
    Aggregation(name="night_share_7d", column="is_night", function="mean", time_window=WEEK),
]


def _feature(aggregation: Aggregation) -> Field:
    kind = Int64 if aggregation.function in ("count", "count_distinct") else Float64
    return Field(name=aggregation.name, dtype=kind)


# Sliding windows over the customer's card activity, over [t - w, t): the transaction being
# scored is never in its own features. Online they are computed from the pushed events at the
# request's time; offline `fsml features build` writes a row at every instant a window changes.
# Both come from these aggregations. After 7 quiet days every window is empty; the TTL keeps that
# state for 8 more, so after 15 quiet days the windows are reported missing rather than zero.
@stream_feature_view(
    entities=[customer],
    source=transactions,
    ttl=timedelta(days=8),
    mode="python",
    timestamp_field="timestamp",
    schema=[_feature(a) for a in WINDOWS],
    aggregations=WINDOWS,
    tags={
        "owner": "fraud",
        "cadence": "event",
        "fsml.check.distinct_within_count": "distinct_merchants_7d <= txn_count_7d",
    },
)
def customer_transaction_windows(inputs: dict) -> dict:
    """Night-time transactions (before 06:00 UTC), derived from each pushed row."""
    inputs["is_night"] = [int(t.hour < 6) for t in inputs["timestamp"]]
    return inputs


# Feast keeps a stream view's batch source apart from its stream source: the change-point rows
# `fsml features build` writes, which training sets read.
customer_transaction_windows.batch_source = _table("customer_transaction_windows")

# Daily snapshot of the merchant registry. The monitor shows drift and performance per merchant
# category (`fsml.segment`), so a change confined to one kind of merchant is not averaged away.
merchant_profile = FeatureView(
    name="merchant_profile",
    entities=[merchant],
    ttl=timedelta(days=2),
    schema=[
        Field(name="category", dtype=String, tags={"fsml.segment": "true"}),
        Field(name="is_online", dtype=Int64, tags={"fsml.min": "0", "fsml.max": "1"}),
    ],
    source=_table("merchant_profile"),
    tags={"owner": "fraud", "cadence": "daily", "fsml.sql": "sql/merchant_profile.sql"},
)

# Daily merchant activity and 30-day fraud rate, from labels known at the snapshot time only.
# Fraud counts come in episodes, so week-to-week swings are normal: their drift threshold
# (Wasserstein distance, in training standard deviations) is looser than the default.
RARE_EVENT = {"fsml.drift.wasserstein": "0.3"}
merchant_risk = FeatureView(
    name="merchant_risk",
    entities=[merchant],
    ttl=timedelta(days=2),
    schema=[
        Field(name="merchant_txn_count_1d", dtype=Int64, tags={"fsml.min": "0"}),
        Field(name="merchant_txn_count_7d", dtype=Int64, tags={"fsml.min": "0"}),
        Field(name="merchant_txn_count_30d", dtype=Int64, tags={"fsml.min": "0"}),
        Field(name="merchant_labelled_count_30d", dtype=Int64, tags={"fsml.min": "0"}),
        Field(name="merchant_fraud_count_30d", dtype=Int64, tags={**RARE_EVENT, "fsml.min": "0"}),
        Field(
            name="merchant_fraud_rate_30d",
            dtype=Float64,
            tags={**RARE_EVENT, "fsml.min": "0", "fsml.max": "1", "fsml.max_null_rate": "1"},
        ),
    ],  # fmt: skip
    source=_table("merchant_risk"),
    tags={
        "owner": "fraud",
        "cadence": "daily",
        "fsml.sql": "sql/merchant_risk.sql",
        "fsml.check.fraud_within_labelled": "merchant_fraud_count_30d <= merchant_labelled_count_30d",
    },
)

# What the caller knows at request time: the amount and the moment of the transaction.
# The `fsml.min` tag is enforced by the API and batch scoring (a negative amount is rejected).
transaction_request = RequestSource(
    name="transaction_request",
    schema=[
        Field(name="amount", dtype=Float64, tags={"fsml.min": "0"}),
        Field(name="timestamp", dtype=UnixTimestamp),
    ],
)


# Request-time features. Python mode: the same function scores one request without a DataFrame
# and builds training sets, so training and serving share one code path. Hours are UTC.
@on_demand_feature_view(
    sources=[customer_transaction_windows[["amount_mean_7d"]], transaction_request],
    schema=[
        Field(name="txn_amount", dtype=Float64),
        Field(name="amount_to_mean_7d", dtype=Float64),
        Field(name="hour_of_day", dtype=Int64),
        Field(name="is_night", dtype=Int64),
    ],
    mode="python",
)
def transaction_context(inputs: dict) -> dict:
    amounts, means, times = inputs["amount"], inputs["amount_mean_7d"], inputs["timestamp"]
    ratio = [
        a / m if a is not None and m is not None and m == m and m > 0 else None
        for a, m in zip(amounts, means, strict=True)
    ]
    hours = [t.hour for t in times]
    return {
        "txn_amount": [float(a) for a in amounts],
        "amount_to_mean_7d": ratio,
        "hour_of_day": hours,
        "is_night": [int(h < 6) for h in hours],
    }


# Version 1 of the fraud model's inputs. A new model with other inputs gets fraud_model_v2;
# a registered model always records the service it was trained on. Its labelled rows are the
# pushed transactions, with the labels pushed for them.
fraud_model_v1 = FeatureService(
    name="fraud_model_v1",
    features=[
        customer_profile,
        customer_transaction_windows,
        merchant_profile,
        merchant_risk,
        transaction_context,
    ],
    description="Card-fraud score inputs: customer profile and activity, merchant risk, request.",
    tags={"fsml.label_source": "transactions"},
)
