"""Seeded parcel deliveries: ready feature tables and a label file for the example's Feast repo.

A parcel is late more often when it travels far, leaves a crowded depot, goes out at night or on
a holiday, or is carried by a less reliable courier. The generator writes what a data team's
pipeline would publish, with the time types real tables have:

- ``deliveries.parquet``: one row per dispatched parcel with its label ``is_late`` and the time it
  became known (``delivered_at``); dispatch times naive (``TIMESTAMP``), delivery times zoned;
- ``courier_stats.parquet``: a daily snapshot per courier of the last 7 days' deliveries that were
  *delivered* before the snapshot (no label from the future); naive nanosecond times;
- ``depot_load.parquet``: the hourly queue and staff of each depot; UTC millisecond times, with a
  created time.

Every draw comes from one ``numpy.random.Generator``: the same arguments give the same bytes.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from fsml.atomic import atomic_path

HOUR = 3_600
DAY = 24 * HOUR
VEHICLES = ("bike", "car", "van")


@dataclass(frozen=True)
class ParcelConfig:
    days: int = 40
    couriers: int = 60
    depots: int = 5
    parcels_per_day: int = 110
    end_date: date | None = None  # default: today (UTC); the data ends at its 00:00 UTC
    seed: int = 3

    @property
    def end(self) -> datetime:
        return datetime.combine(self.end_date or datetime.now(UTC).date(), time(0), tzinfo=UTC)

    @property
    def start(self) -> datetime:
        return self.end - timedelta(days=self.days)


def _depot_codes(n: int) -> np.ndarray:
    return np.array([f"D{i:02d}" for i in range(1, n + 1)])


def _depot_load(rng: np.random.Generator, config: ParcelConfig) -> pd.DataFrame:
    hours = config.days * 24
    codes = _depot_codes(config.depots)
    size = rng.uniform(20, 60, config.depots)
    hour_of_day = np.arange(hours) % 24
    busy = 0.4 + np.exp(-((hour_of_day - 11) ** 2) / 18.0)  # a morning peak
    holiday_days = rng.choice(config.days, size=max(1, config.days // 12), replace=False)
    holiday = np.isin(np.arange(hours) // 24, holiday_days)
    queue = rng.poisson(np.outer(size, busy * np.where(holiday, 1.6, 1.0)))
    staff = np.maximum(1, rng.poisson(np.outer(size / 12, np.where(holiday, 0.5, 1.0) * (0.5 + busy / 2))))
    start = np.datetime64(config.start.replace(tzinfo=None), "ms")
    stamps = start + (np.arange(hours) * HOUR * 1000).astype("timedelta64[ms]")
    return pd.DataFrame(
        {
            "depot_code": np.repeat(codes, hours),
            "hour_start": np.tile(stamps, config.depots),
            "parcels_in_queue": queue.reshape(-1).astype(np.int64),
            "staff_on_shift": staff.reshape(-1).astype(np.int64),
            "is_holiday": np.tile(holiday, config.depots),
            "loaded_at": np.tile(stamps, config.depots) + np.timedelta64(5, "m"),
        }
    )


def _couriers(rng: np.random.Generator, config: ParcelConfig) -> pd.DataFrame:
    """Couriers grow more reliable with experience, each around their own level."""
    years = rng.integers(0, 15, config.couriers)
    return pd.DataFrame(
        {
            "courier_id": np.arange(101, 101 + config.couriers, dtype=np.int64),
            "years_active": years.astype(np.int32),
            "vehicle": np.array(VEHICLES)[rng.integers(0, len(VEHICLES), config.couriers)],
            "home": rng.integers(0, config.depots, config.couriers),
            "reliability": np.clip(0.5 + 0.03 * years + rng.normal(0, 0.07, config.couriers), 0.3, 0.99),
        }
    )


def _deliveries(
    rng: np.random.Generator, config: ParcelConfig, couriers: pd.DataFrame, load: pd.DataFrame
) -> pd.DataFrame:
    n = int(rng.poisson(config.parcels_per_day * config.days))
    reliability, home = couriers["reliability"].to_numpy(), couriers["home"].to_numpy()
    courier = rng.integers(0, config.couriers, n)
    day = rng.integers(0, config.days, n)
    hour = np.clip(rng.normal(13, 4.5, n), 0, 23.99)
    seconds = (day * DAY + hour * HOUR).astype(np.int64)
    distance = np.round(rng.lognormal(1.8, 0.7, n), 2)
    weight = np.round(rng.lognormal(0.8, 0.9, n), 2)
    row = home[courier] * config.days * 24 + seconds // HOUR  # the depot's load at that hour
    per_staff = load["parcels_in_queue"].to_numpy()[row] / load["staff_on_shift"].to_numpy()[row]
    night = (hour < 6) | (hour >= 21)
    logit = (
        -9.6
        + 0.12 * distance
        + 0.5 * np.minimum(per_staff, 8)
        + 8.0 * (1 - reliability[courier])
        + 1.5 * night
        + 1.0 * load["is_holiday"].to_numpy()[row]
    )
    late = rng.random(n) < 1 / (1 + np.exp(-logit))
    delivered = seconds + ((distance / 25 + rng.gamma(2.0, 4.0, n) + np.where(late, 20, 0)) * HOUR).astype(np.int64)
    start = np.datetime64(config.start.replace(tzinfo=None), "us")
    frame = pd.DataFrame(
        {
            "parcel_id": np.arange(1, n + 1, dtype=np.int64),
            "courier_id": courier.astype(np.int64) + 101,
            "depot_code": _depot_codes(config.depots)[home[courier]],
            "distance_km": distance,
            "weight_kg": weight,
            "dispatched_at": start + seconds.astype("timedelta64[s]"),
            "is_late": late.astype(np.int64),
            "delivered_at": pd.Series(start + delivered.astype("timedelta64[s]")).dt.tz_localize("UTC"),
        }
    )
    return frame.sort_values(["dispatched_at", "parcel_id"], kind="mergesort").reset_index(drop=True)


def _courier_stats(config: ParcelConfig, couriers: pd.DataFrame, deliveries: pd.DataFrame) -> pd.DataFrame:
    ids = couriers["courier_id"].to_numpy()
    snapshots = pd.date_range(config.start.replace(tzinfo=None), periods=config.days, freq="D")
    rows = []
    delivered = deliveries["delivered_at"].dt.tz_localize(None)
    for at in snapshots:
        seen = deliveries[(delivered < at) & (deliveries["dispatched_at"] >= at - pd.Timedelta(days=7))]
        counts = seen.groupby("courier_id")["is_late"].agg(["size", "mean"]).reindex(ids)
        rows.append(
            pd.DataFrame(
                {
                    "courier_id": ids,
                    "stats_at": at,
                    "deliveries_7d": counts["size"].fillna(0).astype(np.int64).to_numpy(),
                    "late_rate_7d": counts["mean"].to_numpy(),
                    "years_active": couriers["years_active"].to_numpy(),
                    "vehicle": couriers["vehicle"].to_numpy(),
                }
            )
        )
    return pd.concat(rows, ignore_index=True)


def generate(config: ParcelConfig) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(config.seed)
    couriers = _couriers(rng, config)
    load = _depot_load(rng, config)
    deliveries = _deliveries(rng, config, couriers, load)
    return {
        "depot_load": load,
        "deliveries": deliveries,
        "courier_stats": _courier_stats(config, couriers, deliveries),
    }


# The time type each table is written with: every kind Feast reads, naive or zoned.
TIME_TYPES = {
    "deliveries": {"dispatched_at": pa.timestamp("us"), "delivered_at": pa.timestamp("us", tz="UTC")},
    "courier_stats": {"stats_at": pa.timestamp("ns")},
    "depot_load": {"hour_start": pa.timestamp("ms", tz="UTC"), "loaded_at": pa.timestamp("us")},
}


DISPATCH_COLUMNS = ("parcel_id", "courier_id", "weight_kg", "dispatched_at")


def write(config: ParcelConfig, repo: Path) -> dict[str, object]:
    """Write the tables under ``<repo>/data``, each one atomically; returns a description."""
    tables = generate(config)
    for name, frame in tables.items():
        table = pa.Table.from_pandas(frame, preserve_index=False)
        for column, kind in TIME_TYPES[name].items():
            values = table[column]
            if kind.tz is not None and values.type.tz is None:
                values = values.cast(pa.timestamp(values.type.unit, tz="UTC"))
            table = table.set_column(table.schema.get_field_index(column), column, values.cast(kind))
        with atomic_path(repo / "data" / f"{name}.parquet") as tmp:
            pq.write_table(table, tmp)
    # What the dispatch desk pushes (`fsml push --source dispatches --input data/dispatches.parquet`).
    dispatched = tables["deliveries"][list(DISPATCH_COLUMNS)].copy()
    dispatched["dispatched_at"] = dispatched["dispatched_at"].dt.tz_localize("UTC")
    with atomic_path(repo / "data" / "dispatches.parquet") as tmp:
        dispatched.to_parquet(tmp, index=False)
    late = tables["deliveries"]["is_late"]
    return {
        "directory": str(repo / "data"),
        "rows": {name: len(frame) for name, frame in tables.items()},
        "late_rate": float(late.mean()),
        "start": config.start.isoformat(),
        "end": config.end.isoformat(),
        "config": {k: str(v) for k, v in asdict(config).items()},
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write the parcel example's tables into its feature repo.")
    parser.add_argument("repo", type=Path, help="the feature repo (its data/ folder is written)")
    parser.add_argument("--days", type=int, default=ParcelConfig.days)
    parser.add_argument("--end-date", type=date.fromisoformat, default=None, help="YYYY-MM-DD; default today")
    parser.add_argument("--seed", type=int, default=ParcelConfig.seed)
    args = parser.parse_args(argv)
    config = ParcelConfig(days=args.days, end_date=args.end_date, seed=args.seed)
    print(json.dumps(write(config, args.repo)))  # noqa: T201  (a script's result)


if __name__ == "__main__":
    main()
