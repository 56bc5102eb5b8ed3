"""Feast repos other than the fraud example, made in tmp dirs: the parcel example (its repo copied,
its tables generated) and a repo made by Feast's own ``feast init`` with a label file the test
writes. Both are used from working directories other than their own.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from fsml.settings import PROJECT_ROOT

FEAST = Path(sys.executable).parent / "feast"
PARCELS_END = date(2026, 11, 1)
PARCELS_AS_OF = datetime(2026, 10, 29, tzinfo=UTC)  # champions' training time; labels continue after it
PARCEL_SERVICES = ("late_delivery_v1", "late_delivery_v2")

LABELS = """
from feast import FileSource

# Rides and whether the driver completed them: the labels fsml trains on. Added by the test
# to the repo `feast init` made; the repo's feature services use it as its only label source.
driver_rides = FileSource(
    name="driver_rides",
    path="data/driver_rides.parquet",
    timestamp_field="event_timestamp",
    tags={"fsml.label": "completed", "fsml.id": "ride_id", "fsml.label_available_at": "label_available_at"},
)
"""


def parcels_repo(directory: Path, days: int = 40) -> Path:
    """The parcel example's repo copied into ``directory`` with its tables generated."""
    from fsml.examples.parcels.synthetic import ParcelConfig, write

    repo = directory / "parcels_repo"
    shutil.copytree(PROJECT_ROOT / "examples" / "parcels" / "feature_repo", repo, ignore=shutil.ignore_patterns("data"))
    write(ParcelConfig(days=days, end_date=PARCELS_END), repo)
    return repo


def feast_init_repo(directory: Path, rides: int = 2_000, seed: int = 5) -> Path:
    """``feast init drivers`` in ``directory``, plus a label file and the FileSource declaring it.

    The template's driver statistics are random (Feast does not seed them); labels are drawn
    from them, so whatever they are, a driver is likelier to complete a ride when his
    ``conv_rate`` at that hour, plus a bit of the request's ``val_to_add``, is high.
    """
    done = subprocess.run([str(FEAST), "init", "drivers"], cwd=directory, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    repo = directory / "drivers" / "feature_repo"
    stats = pd.read_parquet(
        repo / "data" / "driver_stats.parquet", columns=["event_timestamp", "driver_id", "conv_rate"]
    )
    stats = stats[stats["event_timestamp"] > pd.Timestamp("2022-01-01", tz="UTC")].sort_values("event_timestamp")
    rng = np.random.default_rng(seed)
    lo, hi = stats["event_timestamp"].min() + pd.Timedelta(hours=1), stats["event_timestamp"].max()
    rows = pd.DataFrame(
        {
            "ride_id": np.arange(1, rides + 1),
            "driver_id": rng.choice(np.sort(stats["driver_id"].unique()), rides),
            "event_timestamp": lo + (hi - lo) * rng.random(rides),
            "val_to_add": rng.integers(0, 10, rides),
            "val_to_add_2": rng.integers(0, 10, rides),
        }
    ).sort_values("event_timestamp", ignore_index=True)
    known = pd.merge_asof(rows, stats, on="event_timestamp", by="driver_id")
    score = known["conv_rate"].to_numpy() + 0.04 * rows["val_to_add"].to_numpy() + rng.normal(0, 0.12, rides)
    rows["completed"] = (score > 0.85).astype(np.int64)
    rows["label_available_at"] = rows["event_timestamp"] + pd.Timedelta(hours=2)
    rows.to_parquet(repo / "data" / "driver_rides.parquet", index=False)
    (repo / "fsml_labels.py").write_text(LABELS)
    return repo
