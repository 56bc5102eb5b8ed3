"""Training-set build: fsml's ASOF store against stock Feast's get_historical_features, with a
plain DuckDB ASOF LEFT JOIN (no TTL, no created-timestamp tie-break) as the floor.

Each size runs in its own process, the three methods interleaved (see ``worker``); timings are
medians of the repeats. A content hash of the result (sorted by row) shows that fsml and stock
Feast return the same values.

    python -m bench.offline ROWS REPEATS HOME REDIS_URL   (one worker, prints JSON)
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from pathlib import Path
from statistics import median
from typing import Any

import pandas as pd

from bench.common import status_mb
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


def _reset_peak() -> None:
    """Start a new high-water mark of resident memory (Linux: ``clear_refs`` 5)."""
    Path("/proc/self/clear_refs").write_text("5")


def worker(rows: int, repeats: int, home: Path, redis_url: str) -> dict[str, Any]:
    """All three methods in one process, interleaved: repeat ``r`` runs them in an order rotated
    by ``r``, so a slow spell of the machine falls on all three alike. Memory is the peak
    resident size during a call above the size when it started (the entity frame excluded)."""
    import gc

    import pyarrow as pa

    entities = entity_frame(rows)
    path = table_path(home)
    stores = {kind: store(home, kind, redis_url) for kind in ("fsml", "stock")}
    calls = {
        "asof": lambda frame: _asof(frame, path),
        **{
            kind: (lambda frame, s=s: s.get_historical_features(entity_df=frame, features=REFS).to_df())
            for kind, s in stores.items()
        },
    }
    methods = list(calls)
    out: dict[str, dict[str, Any]] = {m: {"method": m, "rows": rows, "runs": [], "peak_mb": 0.0} for m in methods}
    for repeat in range(repeats):
        for method in methods[repeat % 3 :] + methods[: repeat % 3]:
            frame = entities.copy()  # stock Feast may modify the frame it is given: each run gets its own
            gc.collect()
            pa.default_memory_pool().release_unused()
            start = status_mb("VmRSS")
            _reset_peak()
            began = time.perf_counter()
            result = calls[method](frame)
            out[method]["runs"].append(time.perf_counter() - began)
            out[method]["peak_mb"] = max(out[method]["peak_mb"], status_mb("VmHWM") - start)
            if repeat == 0:
                out[method]["rows_out"] = len(result)
                out[method]["digest"] = _digest(result) if method != "asof" else None
            del result, frame
    for measured in out.values():
        measured["seconds"] = median(measured["runs"])
    return out


def run(home: Path, redis_url: str, sizes: dict[int, int]) -> dict[str, Any]:
    """``sizes``: entity rows -> repeats. One worker process per size."""
    build_table(home)
    results: dict[str, Any] = {}
    for rows, repeats in sizes.items():
        done = subprocess.run(
            [sys.executable, "-m", "bench.offline", str(rows), str(repeats), str(home), redis_url],
            capture_output=True,
            text=True,
            check=True,
        )
        for method, measured in json.loads(done.stdout.strip().splitlines()[-1]).items():
            results[f"{method}_{rows}"] = measured
            seconds, peak = measured["seconds"], measured["peak_mb"]
            log.info(f"training set {rows:,} rows, {method}: {seconds:.2f} s, peak +{peak:.0f} MB")
        fsml_, stock = results[f"fsml_{rows}"], results[f"stock_{rows}"]
        results[f"summary_{rows}"] = {
            "speedup_vs_stock": stock["seconds"] / fsml_["seconds"],
            "ratio_to_asof_floor": fsml_["seconds"] / results[f"asof_{rows}"]["seconds"],
            "identical_to_stock": fsml_["digest"] == stock["digest"],
        }
    return results


if __name__ == "__main__":
    rows, repeats, home, redis_url = sys.argv[1:5]
    print(json.dumps(worker(int(rows), int(repeats), Path(home), redis_url)))
