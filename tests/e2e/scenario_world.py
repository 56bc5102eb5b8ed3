"""One service, many worlds: generated data with a scenario applied, replayed through a real
``fsml serve`` on a real Redis, and the prediction log of each replay kept apart.

A world is a seed's generated data; its champion is trained on the days before ``K`` (with the
feature warm-up and the train, validation and test windows before it), and every scenario
changes only rows from day ``K``, so one champion serves every scenario of its world. Another
seed's world is published in the same home and its champion promoted; the running service
follows the champion alias by itself.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pyarrow.parquet as pq
from fsml.examples.fraud.synthetic import GeneratorConfig, SyntheticData, generate, save
from fsml.features.build import build_features
from fsml.monitoring.current import Window, logged_window
from fsml.monitoring.monitor import run_monitor
from fsml.monitoring.replay import replay
from fsml.serving.materialize import materialize
from fsml.training.pipeline import train
from fsml.training.promote import promote

from fsml.featurestore import apply_repo
from fsml.settings import Settings

DAYS, K = 75, 58  # 30 days of feature warm-up, 14 + 7 + 7 of train, validation and test, then traffic
END = datetime.combine(date(2026, 11, 1), datetime.min.time(), tzinfo=UTC)
START = END - timedelta(days=DAYS)
SINCE = START + timedelta(days=K)
WINDOWS = {
    "train_days": 14,
    "valid_days": 7,
    "test_days": 7,
    "promotion_window_days": 7,
    "feature_warmup_days": 30,
}

TableEdit = tuple[str, Callable[[pd.DataFrame], pd.DataFrame]]


def config(seed: int) -> GeneratorConfig:
    return GeneratorConfig(customers=800, merchants=114, days=DAYS, end_date=END.date(), seed=seed)


@dataclass
class Service:
    settings: Settings
    url: str
    logs: Path  # each scenario's prediction log is moved under here
    data: SyntheticData | None = None
    seed: int = 0

    def use_world(self, seed: int) -> str:
        """Publish the seed's clean data, train its champion before K, wait until it is served
        (when the service runs)."""
        self.seed, self.data = seed, generate(config(seed))
        self.publish(self.data)
        apply_repo(self.settings)
        outcome = train(self.settings, as_of=SINCE)
        version = outcome.registered.version
        assert promote(self.settings, version=version, force=True, as_of=SINCE).promoted
        if not self.url:
            materialize(self.settings, end=SINCE)  # the service is ready once the store holds its rows
            return version
        deadline = time.monotonic() + 60
        while httpx.get(f"{self.url}/v1/model", timeout=5).json().get("version") != version:
            assert time.monotonic() < deadline, "the service did not follow the champion alias"
            time.sleep(0.2)
        return version

    def publish(self, data: SyntheticData, edit: TableEdit | None = None) -> None:
        """Raw tables and features of ``data``; ``edit`` breaks one published feature table."""
        save(data, config(self.seed), self.settings.raw_dir)
        build_features(self.settings.raw_dir, self.settings.features_dir)
        if edit is not None:
            path = self.settings.features_dir / f"{edit[0]}.parquet"
            edit[1](pd.read_parquet(path)).to_parquet(path, index=False)

    def replay(self, name: str, days: int) -> Path:
        """Days K to K + ``days`` through the service; the log of this replay, moved apart."""
        sent = replay(self.settings, K, K + days, self.url)
        assert sent["failed"] == 0, sent
        live = self.settings.prediction_log_dir
        deadline = time.monotonic() + 30
        while _rows(live) < sent["sent"]:
            assert time.monotonic() < deadline, f"{_rows(live)} of {sent['sent']} rows logged"
            time.sleep(0.2)
        kept = self.logs / f"{name}-seed{self.seed}"
        shutil.move(live, kept)
        return kept

    def monitor(self, logs: Path, hours: float, **overrides: Any) -> dict[str, Any]:
        """The monitor on the first ``hours`` of a replay, with labels as known at the data's end."""
        window: Window = logged_window(logs, SINCE + timedelta(hours=hours), self.settings.monitor_window_days)
        settings = self.settings.model_copy(update=overrides) if overrides else self.settings
        return run_monitor(settings, as_of=END, window=window)


def _rows(directory: Path) -> int:
    return sum(pq.read_metadata(p).num_rows for p in directory.glob("date=*/hour=*/*.parquet"))
