"""Training-set build: fsml's ASOF store against stock Feast's get_historical_features, with a
plain DuckDB ASOF LEFT JOIN (no TTL, no created-timestamp tie-break) as the floor.

Each (method, size) runs in its own process: the timings are medians of its repeats and its
peak resident memory is that process's. A content hash of the result (sorted by row) shows that
fsml and stock Feast return the same values.

    python -m bench.offline METHOD ROWS REPEATS HOME REDIS_URL   (one worker, prints JSON)
"""

from __future__ import annotations

import json
import logging
import resource
import subprocess
import sys
import time
from pathlib import Path
from statistics import median
from typing import Any

import pandas as pd

from bench.repo import REFS, build_table, entity_frame, store, table_path

FEATURE_COLUMNS = [r.split(":")[1] for r in REFS]

log = logging.getLogger(__name__)


def _asof(entities: pd.DataFrame, path: Path) -> pd.DataFrame:
    """The floor: one ASOF LEFT JOIN, entities handed over as Arrow (DuckDB's fastest way in
    and out), no TTL and no created-timestamp tie-break."""
    import duckdb
    import pyarrow as pa

    con = duckdb.connect()
    con.register("e", pa.Table.from_pandas(entities, preserve_index=False))
    columns = ", ".join(f"f.{c}" for c in FEATURE_COLUMNS)
    return (
        con.sql(
            f"SELECT e.*, {columns} FROM e ASOF LEFT JOIN read_parquet('{path}') f "
            "ON e.customer_id = f.customer_id AND e.event_timestamp >= f.event_timestamp"
        )
        .to_arrow_table()
        .to_pandas()
    )


def _digest(frame: pd.DataFrame) -> str:
    ordered = frame.sort_values("row")[FEATURE_COLUMNS].reset_index(drop=True)
    return str(int(pd.util.hash_pandas_object(ordered, index=False).sum()))


def _peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM). Not ``ru_maxrss``: Linux carries that over
    from the parent across fork and exec, so a child would report the harness's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(method: str, rows: int, repeats: int, home: Path, redis_url: str) -> dict[str, Any]:
    entities = entity_frame(rows)
    if method == "asof":
        path = table_path(home)
        run = lambda frame: _asof(frame, path)  # noqa: E731
    else:
        feature_store = store(home, method, redis_url)
        run = lambda frame: feature_store.get_historical_features(entity_df=frame, features=REFS).to_df()  # noqa: E731
    baseline = _peak_rss_mb()
    times, result = [], None
    for _ in range(repeats):
        frame = entities.copy()  # stock Feast may modify the frame it is given: each run gets its own
        result = None  # the previous result is freed before the next run, as in a fresh call
        began = time.perf_counter()
        result = run(frame)
        times.append(time.perf_counter() - began)
    return {
        "method": method,
        "rows": rows,
        "seconds": median(times),
        "runs": times,
        "peak_rss_mb": _peak_rss_mb(),
        "baseline_rss_mb": baseline,
        "digest": _digest(result) if method != "asof" else None,
        "rows_out": len(result),
    }


def run(home: Path, redis_url: str, sizes: dict[int, int]) -> dict[str, Any]:
    """``sizes``: entity rows -> repeats."""
    build_table(home)
    results: dict[str, Any] = {}
    for rows, repeats in sizes.items():
        for method in ("asof", "fsml", "stock"):
            done = subprocess.run(
                [sys.executable, "-m", "bench.offline", method, str(rows), str(repeats), str(home), redis_url],
                capture_output=True,
                text=True,
                check=True,
            )
            measured = json.loads(done.stdout.strip().splitlines()[-1])
            results[f"{method}_{rows}"] = measured
            seconds, peak = measured["seconds"], measured["peak_rss_mb"]
            log.info(f"training set {rows:,} rows, {method}: {seconds:.2f} s, peak {peak:.0f} MB")
        fsml_, stock = results[f"fsml_{rows}"], results[f"stock_{rows}"]
        results[f"summary_{rows}"] = {
            "speedup_vs_stock": stock["seconds"] / fsml_["seconds"],
            "ratio_to_asof_floor": fsml_["seconds"] / results[f"asof_{rows}"]["seconds"],
            "identical_to_stock": fsml_["digest"] == stock["digest"],
        }
    return results


if __name__ == "__main__":
    method, rows, repeats, home, redis_url = sys.argv[1:6]
    print(json.dumps(worker(method, int(rows), int(repeats), Path(home), redis_url)))
