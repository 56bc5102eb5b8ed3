"""Batch scoring end to end: read a Parquet file of transactions, validate, join the features
as of each row's time (through the ASOF offline store), score with the champion, write the
result atomically. rows/s over the whole call, median of the runs."""

from __future__ import annotations

import time
from statistics import median
from typing import Any

import pandas as pd
from fsml.serving.batch import score_file

from bench.common import BenchWorld


def run(world: BenchWorld, repeats: int = 5, rows: int = 200_000) -> dict[str, Any]:
    settings = world.settings
    source = settings.home / "bench_batch" / "transactions.parquet"
    source.parent.mkdir(parents=True, exist_ok=True)
    columns = ["transaction_id", "customer_id", "merchant_id", "amount", "timestamp"]
    transactions = pd.read_parquet(settings.raw_dir / "transactions.parquet", columns=columns)
    transactions.tail(rows).to_parquet(source)  # the most recent ones, as a daily job would score
    target = source.with_name("scored.parquet")
    times, summary = [], {}
    for _ in range(repeats):
        began = time.perf_counter()
        summary = score_file(settings, source, target)
        times.append(time.perf_counter() - began)
    rows = summary["rows_scored"]
    return {"rows": rows, "seconds": median(times), "runs": times, "rows_per_s": rows / median(times)}
