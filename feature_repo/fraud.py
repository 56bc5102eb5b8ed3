"""Feature definitions of the card-fraud example: entities, sources, views and services.

Only declarations live here; the tables are computed by ``fsml features build`` under
``$FSML_HOME/data``. Training and serving refer to a feature service by name and never copy
feature lists. The ``fsml.*`` tags tell the platform where a service's labels come from, so any
Feast repo that carries them can be trained, served and monitored without code changes.
"""

import os
from datetime import timedelta
from pathlib import Path

from feast import Entity, FeatureService, FeatureView, Field, FileSource, RequestSource, ValueType
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Float64, Int64, String, UnixTimestamp

DATA = Path(os.environ.get("FSML_HOME", ".fsml")).resolve() / "data"


def _table(name: str) -> FileSource:
    return FileSource(
        name=f"{name}_source",
        path=str(DATA / "features" / f"{name}.parquet"),
        timestamp_field="event_timestamp",
        created_timestamp_column="created_timestamp",
    )


# A card holder; transactions are scored for the customer who made them.
customer = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.INT64)

# The merchant where a transaction happens.
merchant = Entity(name="merchant", join_keys=["merchant_id"], value_type=ValueType.INT64)

# Raw transactions with their late-arriving labels: the entity rows of training sets.
# A label is usable only from `label_available_at` (the chargeback delay).
transactions = FileSource(
    name="transactions",
    path=str(DATA / "raw" / "transactions.parquet"),
    timestamp_field="timestamp",
    description="Card transactions; is_fraud becomes known at label_available_at.",
    tags={
        "fsml.label": "is_fraud",
        "fsml.label_available_at": "label_available_at",
        "fsml.id": "transaction_id",
    },
)

# Daily CRM snapshot of the customer's profile.
customer_profile = FeatureView(
    name="customer_profile",
    entities=[customer],
    ttl=timedelta(days=2),
    schema=[
        Field(name="age", dtype=Int64),
        Field(name="account_tenure_days", dtype=Int64),
        Field(name="credit_limit", dtype=Float64),
        Field(name="home_region", dtype=String),
    ],
    source=_table("customer_profile"),
    tags={"owner": "fraud", "cadence": "daily"},
)

# Sliding windows over the customer's card activity, exact at every instant: rows are written
# at each change point, from transactions strictly before the row's timestamp. The last row of
# a customer is the all-empty state 7 days after their last transaction; the TTL keeps it for
# 8 more days, so after 15 quiet days the windows are reported missing rather than zero.
customer_transaction_windows = FeatureView(
    name="customer_transaction_windows",
    entities=[customer],
    ttl=timedelta(days=8),
    schema=[
        Field(name="txn_count_1h", dtype=Int64),
        Field(name="amount_sum_1h", dtype=Float64),
        Field(name="txn_count_24h", dtype=Int64),
        Field(name="amount_sum_24h", dtype=Float64),
        Field(name="amount_max_24h", dtype=Float64),
        Field(name="distinct_merchants_24h", dtype=Int64),
        Field(name="txn_count_7d", dtype=Int64),
        Field(name="amount_mean_7d", dtype=Float64),
        Field(name="amount_std_7d", dtype=Float64),
        Field(name="amount_max_7d", dtype=Float64),
        Field(name="distinct_merchants_7d", dtype=Int64),
        Field(name="night_share_7d", dtype=Float64),
    ],
    source=_table("customer_transaction_windows"),
    tags={"owner": "fraud", "cadence": "event"},
)

# Daily snapshot of the merchant registry. The monitor shows drift and performance per merchant
# category (`fsml.segment`), so a change confined to one kind of merchant is not averaged away.
merchant_profile = FeatureView(
    name="merchant_profile",
    entities=[merchant],
    ttl=timedelta(days=2),
    schema=[
        Field(name="category", dtype=String, tags={"fsml.segment": "true"}),
        Field(name="is_online", dtype=Int64),
    ],
    source=_table("merchant_profile"),
    tags={"owner": "fraud", "cadence": "daily"},
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
        Field(name="merchant_txn_count_1d", dtype=Int64),
        Field(name="merchant_txn_count_7d", dtype=Int64),
        Field(name="merchant_txn_count_30d", dtype=Int64),
        Field(name="merchant_labelled_count_30d", dtype=Int64),
        Field(name="merchant_fraud_count_30d", dtype=Int64, tags=RARE_EVENT),
        Field(name="merchant_fraud_rate_30d", dtype=Float64, tags=RARE_EVENT),
    ],
    source=_table("merchant_risk"),
    tags={"owner": "fraud", "cadence": "daily"},
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
# a registered model always records the service it was trained on.
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
