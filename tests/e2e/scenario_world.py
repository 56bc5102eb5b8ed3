"""Many worlds on one Redis: generated data with a scenario applied, replayed as live traffic
(scored and recorded, labels pushed as they mature) through a real ``fsml serve``, and the
prediction log of each replay kept apart.

A world is a seed's generated data, its history pushed up to day ``K`` and its champion trained
on the days before (with the feature warm-up and the train, validation and test windows before
it). Every scenario changes only what happens from day ``K``, so one champion serves every
scenario of its world; before each one the world is put back as it was at ``K`` (pushed rows,
feature tables, Feast's registry, an emptied and reloaded online store), because a replay pushes
what it sends and moves the store's clock.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import redis
from fsml.examples.fraud.history import push_history
from fsml.examples.fraud.synthetic import GeneratorConfig, SyntheticData, generate, save
from fsml.features.build import build_features
from fsml.monitoring.current import Window, logged_window
from fsml.monitoring.monitor import run_monitor
from fsml.monitoring.replay import replay
from fsml.serving.materialize import materialize
from fsml.serving.process import ServerProcess
from fsml.training.pipeline import train
from fsml.training.promote import promote

from fsml.atomic import staged_dir
from fsml.featurestore import apply_repo
from fsml.settings import Settings
from fsml.tables import parquet_files

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
    logs: Path  # each scenario's prediction log is moved under here
    data: SyntheticData | None = None
    seed: int = 0

    @property
    def _clean(self) -> Path:
        return self.logs.parent / f"clean-seed{self.seed}"

    def use_world(self, seed: int) -> str:
        """The seed's clean data pushed up to K, its tables built, its champion trained before K;
        what the data directory holds then is kept to start each scenario from."""
        self.seed, self.data = seed, generate(config(seed))
        save(self.data, config(seed), self.settings.raw_dir)
        self._registry.unlink(missing_ok=True)  # another world's materializations
        apply_repo(self.settings)
        shutil.rmtree(self.settings.data_dir / "events", ignore_errors=True)
        self._flush()  # the ids pushed in another world's replays
        push_history(self.settings, SINCE)
        build_features(self.settings, until=SINCE, full=True)
        outcome = train(self.settings, as_of=SINCE)
        version = outcome.registered.version
        assert promote(self.settings, version=version, force=True, as_of=SINCE).promoted
        shutil.rmtree(self._clean, ignore_errors=True)
        shutil.copytree(self.settings.data_dir / "events", self._clean / "events")
        shutil.copytree(self.settings.features_dir.resolve(), self._clean / "features")
        shutil.copy2(self._registry, self._clean / "registry.db")  # no materialization recorded yet
        return version

    @property
    def _registry(self) -> Path:
        """Feast's registry: it records how far each view was materialized."""
        return self.settings.home / "feast" / f"registry_{self.settings.env}.db"

    def scenario(self, name: str, days: int, data: SyntheticData | None = None, edit: TableEdit | None = None) -> Path:
        """The world as it was at K, ``data`` from K on (default: clean), ``edit`` breaking one
        published feature table as a job outside the build's checks would; days K to K + ``days``
        replayed through a service started on it. Returns the log of this replay, moved apart."""
        settings = self.settings
        save(data or self.data, config(self.seed), settings.raw_dir)  # type: ignore[arg-type]
        shutil.rmtree(settings.data_dir / "events")
        shutil.copytree(self._clean / "events", settings.data_dir / "events")
        with staged_dir(settings.features_dir) as stage:
            shutil.copytree(self._clean / "features", stage, dirs_exist_ok=True)
        if edit is not None:
            for part in parquet_files(settings.features_dir / edit[0]):
                edit[1](pd.read_parquet(part)).to_parquet(part, index=False)
        shutil.copy2(self._clean / "registry.db", self._registry)
        self._flush()
        materialize(settings, end=SINCE)
        with ServerProcess(settings) as server:
            sent = replay(settings, SINCE, SINCE + timedelta(days=days), server.url, labels_until=END)
        assert sent["failed"] == 0 and sent["recorded"] == sent["sent"], sent
        live = settings.prediction_log_dir
        assert _rows(live) == sent["sent"], f"{_rows(live)} of {sent['sent']} rows logged"
        kept = self.logs / f"{name}-seed{self.seed}"
        shutil.move(live, kept)
        return kept

    def _flush(self) -> None:
        """An empty online store: pushed ids (dedupe), window events, snapshots."""
        client = redis.Redis.from_url(self.settings.redis_url)
        client.flushdb()
        client.close()

    def monitor(self, logs: Path, hours: float, **overrides: Any) -> dict[str, Any]:
        """The monitor on the first ``hours`` of a replay, with labels as known at the data's end."""
        window: Window = logged_window(logs, SINCE + timedelta(hours=hours), self.settings.monitor_window_days)
        settings = self.settings.model_copy(update=overrides) if overrides else self.settings
        return run_monitor(settings, as_of=END, window=window)


def _rows(directory: Path) -> int:
    return sum(pq.read_metadata(p).num_rows for p in directory.glob("date=*/hour=*/*.parquet"))
