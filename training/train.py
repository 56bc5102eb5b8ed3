"""Fit a LightGBM model on a time-split training set and package it with its card.

Training is deterministic: a fixed seed, ``deterministic=True``, row-wise histograms and a fixed
thread count give the same booster bytes for the same data and parameters.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from fsml.training.dataset import Windows
from fsml.training.evaluate import calibration, choose_threshold, metrics
from fsml.training.references import monitor_references

from fsml.featurestore import ServiceSpec
from fsml.model import (
    FeatureEncoder,
    FeatureInfo,
    InputInfo,
    ModelBundle,
    ModelCard,
    vocabularies,
)
from fsml.profiles import numeric_profile, profile_frame
from fsml.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 42
    num_threads: int = 2
    num_boost_round: int = 600
    early_stopping_rounds: int = 40
    learning_rate: float = 0.05
    num_leaves: int = 31
    min_data_in_leaf: int = 50

    @classmethod
    def from_settings(cls, settings: Settings) -> TrainConfig:
        return cls(**{name: getattr(settings, name) for name in cls.__dataclass_fields__})

    def lgb_params(self) -> dict[str, Any]:
        return {
            "objective": "binary",
            "metric": "average_precision",
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_data_in_leaf": self.min_data_in_leaf,
            "feature_fraction": 0.9,
            "bagging_fraction": 0.8,
            "bagging_freq": 1,
            "lambda_l2": 1.0,
            "cat_smooth": 10.0,
            "seed": self.seed,
            "deterministic": True,
            "force_row_wise": True,
            "num_threads": self.num_threads,
            "verbosity": -1,
        }

    def as_params(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainedModel:
    bundle: ModelBundle
    test_predictions: pd.DataFrame  # id, timestamp, label, score on the test window
    calibration: dict[str, list[float]]
    importance: dict[str, float]
    best_iteration: int


def fit(
    parts: dict[str, pd.DataFrame],
    spec: ServiceSpec,
    windows: Windows,
    config: TrainConfig,
    model_name: str,
    fingerprint: str,
    engine: Settings | None = None,
    on_iteration: Callable[[int, int], None] | None = None,
) -> TrainedModel:
    """Train on the train window, stop early on validation, evaluate on the test window;
    ``on_iteration(done, num_boost_round)`` follows the boosting (a progress bar).

    With ``engine`` settings of the Ray engine, the trees are grown by LightGBM workers on the
    cluster (``fsml.training.ray_train``); everything else is the same.
    """
    features = vocabularies(parts["train"], _feature_infos(spec))
    encoder = FeatureEncoder(features)
    x = {name: encoder.frame(part) for name, part in parts.items()}
    y = {name: part["label"].to_numpy(np.int64) for name, part in parts.items()}
    options = {"feature_name": encoder.columns, "categorical_feature": encoder.categorical_indices}
    if engine is not None and engine.engine == "ray":
        from fsml.training.ray_train import train_on_ray

        data = {name: (x[name], y[name]) for name in ("train", "valid")}
        text = train_on_ray(
            engine, config.lgb_params(), data, options, config.num_boost_round, config.early_stopping_rounds
        )
        best = lgb.Booster(model_str=text).current_iteration()
        if on_iteration is not None:  # the workers' rounds are not followed: one step when done
            on_iteration(best, best)
    else:
        train_set = lgb.Dataset(x["train"], y["train"], free_raw_data=False, **options)
        valid_set = lgb.Dataset(x["valid"], y["valid"], reference=train_set)
        booster = lgb.train(
            config.lgb_params(),
            train_set,
            num_boost_round=config.num_boost_round,
            valid_sets=[valid_set],
            callbacks=[lgb.early_stopping(config.early_stopping_rounds, verbose=False), *_progress(on_iteration)],
        )
        best = booster.best_iteration or booster.current_iteration()
        text = booster.model_to_string(num_iteration=best)
    final = lgb.Booster(model_str=text)
    text = final.model_to_string()  # byte-for-byte what MLflow's lightgbm flavour saves
    scores = {name: final.predict(x[name], num_threads=config.num_threads) for name in parts}
    threshold = choose_threshold(y["valid"], scores["valid"])
    figures = {
        f"{split}_{key}": value
        for split in ("valid", "test")
        for key, value in metrics(y[split], scores[split], threshold).items()
    }
    figures |= {"train_rows": float(len(y["train"])), "best_iteration": float(best)}
    kinds = _kinds(features)
    card = ModelCard(
        model_name=model_name,
        feature_service=spec.name,
        features=features,
        join_keys=list(spec.join_keys),
        request_fields=list(spec.request_fields),
        inputs=[InputInfo(**vars(i)) for i in spec.inputs],
        id_field=spec.id_field,
        time_field=spec.time_field,
        ttl_seconds=spec.ttl_seconds,
        label=spec.label_source.label,
        threshold=threshold,
        training_window=windows.describe(),
        metrics=figures,
        reference=profile_frame(parts["train"], kinds),
        score_reference=numeric_profile(scores["train"]),
        data_fingerprint=fingerprint,
        **monitor_references(
            parts, scores, threshold, spec.segment_features(), kinds, next(iter(spec.join_keys), None)
        ),
    )
    test = parts["test"]
    id_col = spec.label_source.id
    predictions = pd.DataFrame(
        {
            id_col: test[id_col].to_numpy(),
            "event_timestamp": test["event_timestamp"].to_numpy(),
            "label": y["test"],
            "score": scores["test"],
        }
    )
    gain = final.feature_importance(importance_type="gain")
    return TrainedModel(
        bundle=ModelBundle(booster_text=text, card=card, booster=final),
        test_predictions=predictions,
        calibration=calibration(y["test"], scores["test"]),
        importance={c: float(g) for c, g in zip(encoder.columns, gain, strict=True)},
        best_iteration=best,
    )


def _progress(on_iteration: Callable[[int, int], None] | None) -> list[Callable[[Any], None]]:
    if on_iteration is None:
        return []

    def callback(env: Any) -> None:  # lightgbm.callback.CallbackEnv
        on_iteration(env.iteration + 1, env.end_iteration)

    return [callback]


def _feature_infos(spec: ServiceSpec) -> list[FeatureInfo]:
    return [
        FeatureInfo(column=f.column, view=f.view, name=f.name, dtype=f.dtype, on_demand=f.on_demand)
        for f in spec.features
    ]


def _kinds(features: list[FeatureInfo]) -> dict[str, str]:
    return {f.column: "categorical" if f.dtype == "string" else "numeric" for f in features}
