"""The Ray engine with 1 and then 2 worker CPUs on the same jobs: batch scoring of the batch
bench's 1,000,000 rows, and the training-set join of the bench's feature service; and LightGBM
trained data-parallel by 2 Ray workers against the local fit of the same training set (the
metrics' differences are the tolerance the README states).

A local Ray is started with ``num_cpus`` 1, then 2 (the driver runs beside the workers, as a
laptop's would); each job runs once to warm the workers (their imports), then ``repeats`` times.
Speed-up is the 1-CPU median over the 2-CPU median.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from statistics import median
from typing import Any

from bench.batch import input_file
from bench.common import BenchWorld

log = logging.getLogger(__name__)


def _timed(work: Any, repeats: int) -> list[float]:
    work()  # warm-up
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        work()
        times.append(time.perf_counter() - began)
    return times


def run(world: BenchWorld, repeats: int = 3, rows: int = 1_000_000) -> dict[str, Any]:
    import ray
    from fsml.serving.batch import score_file
    from fsml.training.dataset import first_timestamp
    from fsml.training.partitions import partitioned_features
    from fsml.training.pipeline import prepare
    from fsml.training.train import TrainConfig, fit

    settings = world.settings.model_copy(update={"engine": "ray"})
    source = input_file(settings, rows)
    scored = source.with_name("scored-ray.parquet")
    local = world.settings.model_copy(update={"engine": "local"})
    spec, windows, days, training_set = prepare(local, settings.feature_service, world.end)
    start = max(windows.start, first_timestamp(spec) + timedelta(days=days.warmup))
    results: dict[str, Any] = {"rows": rows}
    joined: list[int] = []
    config = TrainConfig.from_settings(local)

    def fit_with(engine: Any) -> tuple[dict[str, float], float]:
        began = time.perf_counter()
        name, print_ = local.model_name(spec.name), training_set.fingerprint
        trained = fit(training_set.parts, spec, windows, config, name, print_, engine)
        return trained.bundle.card.metrics, time.perf_counter() - began

    results["training_local"] = dict(zip(("metrics", "seconds"), fit_with(local), strict=True))

    def join() -> None:
        joined.append(len(partitioned_features(settings, spec, start, windows.as_of)))

    for cpus in (1, 2):
        ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, object_store_memory=300 * 2**20)
        try:
            scoring = _timed(lambda: score_file(settings, source, scored, overwrite=True), repeats)
            joining = _timed(join, repeats)
            if cpus == 2:
                metrics, seconds = fit_with(settings)
                results["training_ray"] = {
                    "metrics": metrics,
                    "seconds": seconds,
                    "workers": settings.ray_train_workers,
                }
        finally:
            ray.shutdown()
        results[f"cpus_{cpus}"] = {
            "scoring_seconds": median(scoring),
            "scoring_runs": scoring,
            "scoring_rows_per_s": rows / median(scoring),
            "join_seconds": median(joining),
            "join_runs": joining,
        }
        log.info("Ray, %d CPU(s): scoring %.1f s, training-set join %.1f s", cpus, median(scoring), median(joining))
    one, two = results["cpus_1"], results["cpus_2"]
    ray_metrics, local_metrics = results["training_ray"]["metrics"], results["training_local"]["metrics"]
    results["summary"] = {
        "scoring_speedup": one["scoring_seconds"] / two["scoring_seconds"],
        "join_speedup": one["join_seconds"] / two["join_seconds"],
        "training_rows": joined[-1],
        **{
            f"training_{key}_difference": ray_metrics[key] - local_metrics[key]
            for key in ("test_roc_auc", "test_pr_auc", "valid_pr_auc")
        },
    }
    return results
