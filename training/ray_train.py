"""LightGBM trained data-parallel on a Ray cluster, with Ray Train's LightGBM trainer.

Each of ``FSML_RAY_TRAIN_WORKERS`` workers takes a contiguous block of the encoded training
rows (the same rows for the same data and worker count, so a run can be reproduced) and the
whole validation window; LightGBM's own network mode (``tree_learner=data_parallel``, set up by
Ray Train) sums the histograms across workers. Every worker evaluates the same full validation
set, so all stop early at the same round. The model is LightGBM's text, written by worker 0
into a Ray Train checkpoint under ``FSML_HOME/ray`` (a path every node sees) and read back here;
the rest of training (threshold, metrics, card, MLflow record) is the local engine's.

Distributed LightGBM finds its histogram bins from each worker's share of the rows, so the
trees differ slightly from a single machine's: the README gives the tolerance on the metrics.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from fsml.distributed import import_ray, ray_session
from fsml.errors import FsmlError
from fsml.settings import Settings

log = logging.getLogger(__name__)

MODEL_FILE = "model.lgb.txt"


def train_on_ray(
    settings: Settings,
    params: dict[str, Any],
    data: dict[str, tuple[np.ndarray, np.ndarray]],
    dataset_options: dict[str, Any],
    num_boost_round: int,
    early_stopping_rounds: int,
) -> str:
    """The booster's text at its best iteration, trained by the cluster's workers."""
    ray = import_ray()
    from ray.train import RunConfig, ScalingConfig
    from ray.train.lightgbm import LightGBMTrainer

    with ray_session(settings):
        config = {
            "params": {**params, "num_threads": 1},
            "data": ray.put(data),
            "dataset_options": dataset_options,
            "num_boost_round": num_boost_round,
            "early_stopping_rounds": early_stopping_rounds,
        }
        storage = settings.home / "ray" / "train"
        storage.mkdir(parents=True, exist_ok=True)
        trainer = LightGBMTrainer(
            _train_worker,
            train_loop_config=config,
            scaling_config=ScalingConfig(num_workers=settings.ray_train_workers, resources_per_worker={"CPU": 1}),
            run_config=RunConfig(storage_path=str(storage), name=f"lightgbm-{settings.env}"),
        )
        try:
            result = trainer.fit()
        except Exception as exc:  # Ray wraps the workers' errors in its own types
            raise FsmlError(f"distributed training failed: {type(exc).__name__}: {_line(exc)}") from exc
        if result.checkpoint is None:
            raise FsmlError("distributed training ended without a model")
        with result.checkpoint.as_directory() as directory:
            return (Path(directory) / MODEL_FILE).read_text()


def _train_worker(config: dict[str, Any]) -> None:
    """Runs in each Ray Train worker."""
    import lightgbm as lgb
    import ray
    import ray.train
    from ray.train.lightgbm import get_network_params

    context = ray.train.get_context()
    rank, size = context.get_world_rank(), context.get_world_size()
    data = ray.get(config["data"])
    x, y = data["train"]
    low, high = rank * len(y) // size, (rank + 1) * len(y) // size
    options = config["dataset_options"]
    train_set = lgb.Dataset(x[low:high], y[low:high], free_raw_data=False, **options)
    valid_set = lgb.Dataset(*data["valid"], reference=train_set)
    params = {**config["params"], "tree_learner": "data_parallel", "pre_partition": True, **get_network_params()}
    booster = lgb.train(
        params,
        train_set,
        num_boost_round=config["num_boost_round"],
        valid_sets=[valid_set],
        callbacks=[lgb.early_stopping(config["early_stopping_rounds"], verbose=False)],
    )
    best = booster.best_iteration or booster.current_iteration()
    metrics = {"best_iteration": best}
    if rank != 0:
        ray.train.report(metrics)
        return
    with tempfile.TemporaryDirectory() as directory:
        Path(directory, MODEL_FILE).write_text(without_addresses(booster.model_to_string(num_iteration=best)))
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(directory))


def without_addresses(text: str) -> str:
    """The model text without the workers' addresses and ports, which LightGBM records among
    its parameters but which change from run to run (the same model then has the same bytes)."""
    return "".join(line for line in text.splitlines(keepends=True) if not line.startswith(_ADDRESS_PARAMETERS))


_ADDRESS_PARAMETERS = ("[machines: ", "[local_listen_port: ", "[machine_list_filename: ")


def _line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""
