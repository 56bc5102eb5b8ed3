"""``fsml features build``: incremental against full, on the bench's data.

The world's transactions and labels are pushed (offline) up to the last 1% of transactions;
the tables are built; then the last 1% (and the labels that became known meanwhile) are pushed
and the build brought up to date: incrementally (what is timed as "incremental"), then from
scratch (``full=True``, "full"). Each repetition starts from a copy of the 99% state.
"""

from __future__ import annotations

import logging
import shutil
import time
from datetime import timedelta
from statistics import median
from typing import Any

import pandas as pd
import redis

from bench.common import BenchWorld

log = logging.getLogger(__name__)


def _push(settings: Any, source: str, frame: pd.DataFrame) -> int:
    from fsml.serving.push import push_file

    path = settings.home / f"{source}.parquet"
    frame.to_parquet(path, index=False)
    return push_file(settings, source, path, offline=True)["accepted"]


def run(world: BenchWorld, repeats: int = 3, share: float = 0.01) -> dict[str, Any]:
    from fsml.features.build import build_features

    from fsml.featurestore import apply_repo

    home = world.settings.home / "build"
    shutil.rmtree(home, ignore_errors=True)
    raw = world.settings.raw_dir
    tx, labels = pd.read_parquet(raw / "transactions.parquet"), pd.read_parquet(raw / "labels.parquet")
    tx = tx.sort_values("timestamp", kind="mergesort")
    cut = tx["timestamp"].iloc[int(len(tx) * (1 - share))]
    end = world.end
    labels = labels[labels["label_available_at"] < end]
    url = f"{world.settings.redis_url.rsplit('/', 1)[0]}/9"
    settings = world.settings.model_copy(update={"home": home / "work", "redis_url": url})
    base = home / "base"
    (base / "data").mkdir(parents=True)
    shutil.copytree(raw.resolve(), base / "data" / "raw")
    redis.Redis.from_url(url).flushdb()
    settings.export()
    first = settings.model_copy(update={"home": base})
    first.export()
    apply_repo(first)
    _push(first, "transactions", tx[tx["timestamp"] < cut])
    _push(first, "labels", labels[labels["label_available_at"] < cut])
    build_features(first, until=cut.floor("D").to_pydatetime())
    new = {"transactions": tx[tx["timestamp"] >= cut], "labels": labels[labels["label_available_at"] >= cut]}
    incremental, full = [], []
    for _ in range(repeats):
        shutil.rmtree(settings.home, ignore_errors=True)
        shutil.copytree(base, settings.home, symlinks=True, copy_function=_link)
        redis.Redis.from_url(url).flushdb()  # the new ids are new again
        settings.export()
        apply_repo(settings)
        for source, frame in new.items():
            _push(settings, source, frame)
        began = time.perf_counter()
        result = build_features(settings, until=end)
        incremental.append(time.perf_counter() - began)
        assert result.mode == "incremental", result.mode
        began = time.perf_counter()
        build_features(settings, until=end, full=True)
        full.append(time.perf_counter() - began)
        log.info("build: incremental %.2f s, full %.2f s", incremental[-1], full[-1])
    world.settings.export()
    return {
        "transactions": len(tx),
        "new_transactions": len(new["transactions"]),
        "new_labels": len(new["labels"]),
        "new_share": len(new["transactions"]) / len(tx),
        "snapshot_days_added": (end - cut.floor("D").to_pydatetime()) // timedelta(days=1),
        "incremental_seconds": median(incremental),
        "full_seconds": median(full),
        "incremental_runs": incremental,
        "full_runs": full,
        "summary": {"incremental_share_of_full": median(incremental) / median(full)},
    }


def _link(source: str, target: str) -> None:
    """Hard links for the immutable Parquet parts, copies for the rest (the registry changes)."""
    import os

    if source.endswith(".parquet"):
        os.link(source, target)
    else:
        shutil.copy2(source, target)
