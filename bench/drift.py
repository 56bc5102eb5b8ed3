"""Drift computation on 1 million rows by 50 features: fsml's monitor against Evidently's data
drift preset, on the same data, with the per-feature verdicts compared.

45 numeric and 5 categorical columns; 10 numeric and 2 categorical columns drift (shifts and
scale changes of about a quarter of a standard deviation, a new category mix). fsml compares
against reference profiles computed once from the reference data (as at training time);
Evidently compares the raw reference rows with the current rows. Both decide with Wasserstein
distance (numeric) and Jensen-Shannon distance (categorical) at 0.1, Evidently's defaults for
large data.
"""

from __future__ import annotations

import json
import statistics
import time
from typing import Any

import numpy as np
import pandas as pd
from fsml.monitoring.drift import Thresholds, categorical_drift, numeric_drift

from fsml.profiles import profile_frame

NUMERIC, CATEGORICAL = 45, 5
DRIFTED_NUMERIC, DRIFTED_CATEGORICAL = 10, 2
CATEGORIES = np.array(["grocery", "retail", "travel", "online", "fuel", "gaming"])


def frames(rows: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)

    def one(drift: bool) -> pd.DataFrame:
        data: dict[str, Any] = {}
        for i in range(NUMERIC):
            shift = 0.25 if drift and i < DRIFTED_NUMERIC else 0.0
            scale = 1.3 if drift and i < DRIFTED_NUMERIC // 2 else 1.0
            base = rng.lognormal(0, 0.6, rows) if i % 3 == 0 else rng.normal(0, 1, rows)
            data[f"num_{i}"] = base * scale + shift * base.std()
        for j in range(CATEGORICAL):
            p = [0.3, 0.25, 0.15, 0.1, 0.1, 0.1]
            if drift and j < DRIFTED_CATEGORICAL:
                p = [0.15, 0.15, 0.15, 0.35, 0.1, 0.1]
            data[f"cat_{j}"] = CATEGORIES[rng.choice(6, rows, p=p)]
        return pd.DataFrame(data)

    return one(False), one(True)


def fsml_drift(reference_profiles: dict[str, Any], current: pd.DataFrame) -> dict[str, bool]:
    from concurrent.futures import ThreadPoolExecutor

    limits = Thresholds()

    def one(column: str) -> tuple[str, bool]:
        values = current[column].to_numpy()
        if column.startswith("cat_"):
            return column, categorical_drift(column, reference_profiles[column], values, limits).drifted
        return column, numeric_drift(column, reference_profiles[column], values.astype(float), limits).drifted

    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(pool.map(one, current.columns))


def evidently_drift(reference: pd.DataFrame, current: pd.DataFrame) -> dict[str, bool]:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(
        numerical_columns=[c for c in reference.columns if c.startswith("num_")],
        categorical_columns=[c for c in reference.columns if c.startswith("cat_")],
    )
    report = Report([DataDriftPreset()])
    result = report.run(
        current_data=Dataset.from_pandas(current, data_definition=definition),
        reference_data=Dataset.from_pandas(reference, data_definition=definition),
    )
    verdicts = {}
    for metric in result.dict()["metrics"]:
        name = metric.get("metric_name", "")
        if name.startswith("ValueDrift(column="):
            column = name.split("column=", 1)[1].split(",", 1)[0].rstrip(")")
            threshold = metric["config"].get("threshold", 0.1)
            verdicts[column] = float(metric["value"]) >= threshold
    return verdicts


def run(rows: int = 1_000_000, repeats: int = 5, evidently_repeats: int = 1) -> dict[str, Any]:
    reference, current = frames(rows)
    kinds = {c: "categorical" if c.startswith("cat_") else "numeric" for c in reference.columns}
    began = time.perf_counter()
    profiles = profile_frame(reference, kinds)
    profile_seconds = time.perf_counter() - began
    ours, times = {}, []
    for _ in range(repeats):
        began = time.perf_counter()
        ours = fsml_drift(profiles, current)
        times.append(time.perf_counter() - began)
    import evidently.presets  # noqa: F401  (its import, about 9 s, is not part of the computation)

    theirs, their_times = {}, []
    for _ in range(evidently_repeats):
        began = time.perf_counter()
        theirs = evidently_drift(reference, current)
        their_times.append(time.perf_counter() - began)
    truth = {
        c: (c.startswith("num_") and int(c[4:]) < DRIFTED_NUMERIC)
        or (c.startswith("cat_") and int(c[4:]) < DRIFTED_CATEGORICAL)
        for c in reference.columns
    }
    agree = sum(ours[c] == theirs.get(c) for c in ours)
    return {
        "rows": rows,
        "columns": len(reference.columns),
        "fsml_seconds": statistics.median(times),
        "fsml_runs": times,
        "reference_profile_seconds": profile_seconds,
        "evidently_seconds": statistics.median(their_times),
        "evidently_runs": their_times,
        "speedup": statistics.median(their_times) / statistics.median(times),
        "verdicts_agree": agree,
        "fsml_correct": sum(ours[c] == truth[c] for c in truth),
        "evidently_correct": sum(theirs.get(c) == truth[c] for c in truth),
        "fsml_drifted": sorted(c for c, v in ours.items() if v),
        "evidently_drifted": sorted(c for c, v in theirs.items() if v),
    }


if __name__ == "__main__":
    import sys

    print(json.dumps(run(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000, repeats=3), indent=2))
