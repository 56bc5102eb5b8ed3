"""Feature definitions of the parcel-delivery example: will a parcel be delivered late?

Only declarations live here; the tables under ``data/`` are written ready-made by the example's
generator (``python -m fsml.examples.parcels <this directory>``), as a data team's pipeline
would. Paths are relative to this directory. The ``fsml.*`` tags tell the platform where labels,
ids and times are; nothing in fsml names this example's columns.
"""

from datetime import timedelta

import pandas as pd
from feast import Entity, FeatureService, FeatureView, Field, FileSource, PushSource, RequestSource, ValueType
from feast.aggregation import Aggregation
from feast.on_demand_feature_view import on_demand_feature_view
from feast.stream_feature_view import stream_feature_view
from feast.types import Bool, Float64, Int32, Int64, String, UnixTimestamp

# The courier who carries a parcel.
courier = Entity(name="courier", join_keys=["courier_id"], value_type=ValueType.INT64)

# One parcel; the rows pushed as parcels are dispatched refer to it.
parcel = Entity(name="parcel", join_keys=["parcel_id"], value_type=ValueType.INT64)

# The depot a parcel leaves from, named by a code.
depot = Entity(name="depot", join_keys=["depot_code"], value_type=ValueType.STRING)

# Dispatched parcels: the entity rows of training sets. Whether a parcel was late is known once
# it is delivered.
deliveries = FileSource(
    name="deliveries",
    path="data/deliveries.parquet",
    timestamp_field="dispatched_at",
    description="Dispatched parcels; is_late becomes known at delivered_at.",
    tags={
        "fsml.label": "is_late",
        "fsml.id": "parcel_id",
        "fsml.label_available_at": "delivered_at",
    },
)

# Daily snapshot of each courier's recent record (times: naive, nanoseconds).
courier_stats = FeatureView(
    name="courier_stats",
    entities=[courier],
    ttl=timedelta(days=2),
    schema=[
        Field(name="deliveries_7d", dtype=Int64),
        Field(name="late_rate_7d", dtype=Float64),
        Field(name="years_active", dtype=Int32),
        Field(name="vehicle", dtype=String),
    ],
    source=FileSource(name="courier_stats_source", path="data/courier_stats.parquet", timestamp_field="stats_at"),
)

# Hourly load of each depot (times: UTC, milliseconds; a created time breaks ties).
depot_load = FeatureView(
    name="depot_load",
    entities=[depot],
    ttl=timedelta(hours=6),
    schema=[
        Field(name="parcels_in_queue", dtype=Int64),
        Field(name="staff_on_shift", dtype=Int64),
        Field(name="is_holiday", dtype=Bool),
    ],
    source=FileSource(
        name="depot_load_source",
        path="data/depot_load.parquet",
        timestamp_field="hour_start",
        created_timestamp_column="loaded_at",
    ),
)

# Dispatches, pushed as they happen (`POST /v1/push/dispatches` or `fsml push`); they land in
# date partitions under data/events/dispatches/.
dispatches = PushSource(
    name="dispatches",
    batch_source=FileSource(
        name="dispatches_log", path="data/events/dispatches/*/*.parquet", timestamp_field="dispatched_at"
    ),
    description="Parcels as they are dispatched, by parcel id.",
    tags={"fsml.id": "parcel_id"},
)

# The pushed rows as a view: its schema is what a push is checked against.
dispatch_log = FeatureView(
    name="dispatch_log",
    entities=[parcel],
    source=dispatches,
    online=False,
    schema=[
        Field(name="courier_id", dtype=Int64, tags={"fsml.min": "1"}),
        Field(name="weight_kg", dtype=Float64, tags={"fsml.min": "0"}),
    ],
)

COURIER_LOAD = [
    Aggregation(name="parcels_1h", column="weight_kg", function="count", time_window=timedelta(hours=1)),
    Aggregation(name="parcels_24h", column="weight_kg", function="count", time_window=timedelta(days=1)),
    Aggregation(name="kg_24h", column="weight_kg", function="sum", time_window=timedelta(days=1)),
]


# What each courier was given to carry over sliding windows, fresh at the next request after a push.
@stream_feature_view(
    entities=[courier],
    source=dispatches,
    ttl=timedelta(days=2),
    mode="python",
    timestamp_field="dispatched_at",
    schema=[
        Field(name="parcels_1h", dtype=Int64),
        Field(name="parcels_24h", dtype=Int64),
        Field(name="kg_24h", dtype=Float64),
    ],
    aggregations=COURIER_LOAD,
)
def courier_load(inputs: dict) -> dict:
    return inputs


# The change-point rows `fsml features build` writes from the pushed dispatches.
courier_load.batch_source = FileSource(
    name="courier_load_source",
    path="data/features/courier_load/*.parquet",
    timestamp_field="event_timestamp",
    created_timestamp_column="created_timestamp",
)

# What the caller knows when a parcel is dispatched.
parcel_request = RequestSource(
    name="parcel_request",
    schema=[
        Field(name="distance_km", dtype=Float64, tags={"fsml.min": "0"}),
        Field(name="weight_kg", dtype=Float64, tags={"fsml.min": "0"}),
        Field(name="dispatched_at", dtype=UnixTimestamp),
    ],
)


# Load at the depot and the hour of dispatch (pandas mode: one DataFrame in, one out).
@on_demand_feature_view(
    sources=[depot_load[["parcels_in_queue", "staff_on_shift"]], parcel_request],
    schema=[Field(name="queue_per_staff", dtype=Float64), Field(name="dispatch_hour", dtype=Int64)],
    mode="pandas",
)
def dispatch_context(inputs: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(index=inputs.index)
    out["queue_per_staff"] = inputs["parcels_in_queue"] / inputs["staff_on_shift"].clip(lower=1)
    out["dispatch_hour"] = inputs["dispatched_at"].dt.hour.astype("int64")
    return out


# The parcel itself (python mode: a dict of lists in, one out).
@on_demand_feature_view(
    sources=[parcel_request],
    schema=[Field(name="route_km", dtype=Float64), Field(name="kg_per_km", dtype=Float64)],
    mode="python",
)
def parcel_shape(inputs: dict) -> dict:
    distances, weights = inputs["distance_km"], inputs["weight_kg"]
    return {
        "route_km": [float(d) for d in distances],
        "kg_per_km": [w / d if d else None for w, d in zip(weights, distances, strict=True)],
    }


# Version 1: who carries the parcel and how busy the depot is.
late_delivery_v1 = FeatureService(
    name="late_delivery_v1",
    features=[courier_stats, dispatch_context],
    tags={"fsml.label_source": "deliveries"},
)

# Version 2 adds the depot's raw load, the parcel's size and the courier's live load: a better
# model, served beside v1.
late_delivery_v2 = FeatureService(
    name="late_delivery_v2",
    features=[courier_stats, depot_load, dispatch_context, parcel_shape, courier_load],
    tags={"fsml.label_source": "deliveries"},
)
