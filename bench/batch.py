"""Batch scoring end to end against its floor, LightGBM's bare predict of the same rows.

``fsml score`` on 1,000,000 transactions (the bench data's transactions repeated with new ids, in
time order, as a quarter's file would be): read, validate, point-in-time features (one ASOF join
per view and slice), on-demand features, encode, predict, write. rows/s over the whole call,
median of the runs; the floor, measured in the same run and interleaved with them, is
``Booster.predict`` of the same rows' feature matrix with every thread. Peak memory is measured
in a child process per input size (``VmHWM`` above its start), to show it follows the slice
size (``FSML_SCORE_CHUNK_ROWS``) rather than the file's.

    python -m bench.batch ROWS   # one scoring run in this process; prints its peak memory
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from statistics import median
from typing import Any

import numpy as np
import pandas as pd

from bench.common import BenchWorld, status_mb

log = logging.getLogger(__name__)
COLUMNS = ["transaction_id", "customer_id", "merchant_id", "amount", "timestamp"]


def input_file(settings: Any, rows: int) -> Path:
    """``rows`` transactions in time order, made once per size."""
    target = settings.home / "bench_batch" / f"transactions-{rows}.parquet"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    base = pd.read_parquet(settings.raw_dir / "transactions.parquet", columns=COLUMNS)
    frame = pd.concat([base] * -(-rows // len(base)), ignore_index=True).tail(rows).reset_index(drop=True)
    frame["transaction_id"] = np.arange(1, rows + 1)
    frame.sort_values("timestamp", kind="mergesort").to_parquet(target, index=False)
    return target


def _matrix(settings: Any, source: Path) -> tuple[Any, np.ndarray]:
    """The model and the feature matrix of every row of ``source``, as scoring builds them."""
    from fsml.training.dataset import with_features

    from fsml import registry
    from fsml.featurestore import describe_service, open_store

    bundle = registry.load_champion(settings, "")
    store = open_store(settings)
    spec = describe_service(store, bundle.card.feature_service)
    frame = pd.read_parquet(source)
    features = with_features(store, spec, frame.assign(event_timestamp=frame["timestamp"]))
    return bundle, bundle.encoder.frame(features)


def peak_memory(settings: Any, rows: int) -> dict[str, float]:
    """One scoring run of ``rows`` rows in a child process: its peak resident memory."""
    env = {**os.environ, **{f"FSML_{k.upper()}": str(v) for k, v in (("home", settings.home), ("env", settings.env))}}
    env["REDIS_URL"] = settings.redis_url
    done = subprocess.run(
        [sys.executable, "-m", "bench.batch", str(rows)], capture_output=True, text=True, env=env, timeout=900
    )
    line = next((x for x in done.stdout.splitlines() if x.startswith("PEAK_JSON ")), None)
    if line is None:
        raise RuntimeError(f"bench.batch {rows} failed: {done.stderr[-800:]}")
    return json.loads(line.removeprefix("PEAK_JSON "))


def run(world: BenchWorld, repeats: int = 5, rows: int = 1_000_000) -> dict[str, Any]:
    from fsml.serving.batch import score_file

    settings = world.settings.model_copy(update={"engine": "local"})
    source = input_file(settings, rows)
    target = source.with_name("scored.parquet")
    bundle, matrix = _matrix(settings, source)
    threads = os.cpu_count() or 1
    score_file(settings, source, target, overwrite=True)  # warm-up: imports, the store's file-version checks
    times, floors, summary = [], [], {}
    for _ in range(repeats):  # interleaved, so that a slow spell of the machine falls on both
        began = time.perf_counter()
        bundle.booster.predict(matrix, num_threads=threads)
        floors.append(time.perf_counter() - began)
        began = time.perf_counter()
        summary = score_file(settings, source, target, overwrite=True)
        times.append(time.perf_counter() - began)
    scored = summary["rows_scored"]
    result: dict[str, Any] = {
        "rows": scored,
        "slices": summary["slices"],
        "chunk_rows": settings.score_chunk_rows,
        "seconds": median(times),
        "runs": times,
        "rows_per_s": scored / median(times),
        "floor_seconds": median(floors),
        "floor_runs": floors,
        "floor_rows_per_s": scored / median(floors),
        "trees": bundle.booster.num_trees(),
        "features": matrix.shape[1],
    }
    result["ratio_to_floor"] = result["rows_per_s"] / result["floor_rows_per_s"]
    result["memory"] = {str(n): peak_memory(settings, n) for n in (rows // 4, rows)}
    log.info(
        "batch scoring: %s rows/s, floor %s rows/s (%.2f×)",
        f"{result['rows_per_s']:,.0f}",
        f"{result['floor_rows_per_s']:,.0f}",
        result["ratio_to_floor"],
    )
    return result


def _one_run(rows: int) -> None:
    from fsml.serving.batch import score_file

    from fsml import registry
    from fsml.settings import Settings

    settings = Settings(engine="local")
    registry.load_champion(settings, "")  # imports and the registry: not part of the scoring's memory
    source = input_file(settings, rows)
    start = status_mb("VmRSS")
    began = time.perf_counter()
    summary = score_file(settings, source, source.with_name(f"scored-{rows}.parquet"), overwrite=True)
    seconds = time.perf_counter() - began
    peak = status_mb("VmHWM")
    print("PEAK_JSON " + json.dumps({"rows": rows, "slices": summary["slices"], "start_mb": start,
                                     "peak_mb": peak, "above_start_mb": peak - start, "seconds": seconds}))  # fmt: skip


if __name__ == "__main__":
    _one_run(int(sys.argv[1]))
