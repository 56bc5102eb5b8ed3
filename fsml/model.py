"""The model as every stage sees it: a LightGBM text booster plus a JSON sidecar.

The sidecar (``ModelCard``) records what is needed to use the booster without the training code:
the feature service, the feature order and types with the vocabularies of categorical features,
the decision threshold, the training window, the test metrics, reference statistics of every
feature and of the score for the monitor, the score calibration (for performance estimates before
labels), the test window's decision rate and upper tail, and per-segment references.
``FeatureEncoder`` turns feature values into the booster's input the same way for a training
set, a batch file and a single request.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, Field

BOOSTER_FILE = "model.lgb.txt"
CARD_FILE = "fsml_model.json"
FLAG, PASS, REVIEW = "flag", "pass", "review"


def decision(score: float, threshold: float, all_missing: bool = False, policy: str = REVIEW) -> str:
    """The decision for one score: the one rule the service, batch scoring and MLflow share.

    A row whose stored features were all missing or stale (a flushed store, an entity never
    seen) is scored on request fields alone: the score says little, so the decision is the
    policy (``FSML_MISSING_FEATURES_DECISION``: ``review`` by default, ``flag`` or ``pass``)."""
    if all_missing:
        return policy
    return FLAG if score >= threshold else PASS


def decisions(scores: np.ndarray, threshold: float, all_missing: Any = None, policy: str = REVIEW) -> np.ndarray:
    """``decision`` for many rows at once."""
    out = np.where(np.asarray(scores) >= threshold, FLAG, PASS)
    return out if all_missing is None else np.where(all_missing, policy, out)


def decision_array(scores: np.ndarray, threshold: float, all_missing: Any = None, policy: str = REVIEW) -> pa.Array:
    """``decisions`` as an Arrow string column, picked by code from the three words: converting
    NumPy's fixed-width strings to Arrow cost ten times as much (6 ms per 100,000 rows)."""
    codes = np.where(np.asarray(scores) >= threshold, 0, 1).astype(np.int8)
    if all_missing is not None:
        codes[np.asarray(all_missing, dtype=bool)] = 2
    return pa.array([FLAG, PASS, policy], pa.string()).take(codes)


class FeatureInfo(BaseModel):
    column: str  # "view__feature", the name in training sets and in the booster
    view: str
    name: str
    dtype: str  # "float", "int" or "string"
    on_demand: bool = False
    categories: list[str] | None = None  # vocabulary of a string feature, in code order


class InputInfo(BaseModel):
    name: str
    dtype: str  # "int", "float", "string" or "timestamp"
    kind: str  # "key" (entity join key) or "request"
    minimum: float | None = None


class ModelCard(BaseModel):
    format_version: int = 1
    model_name: str
    feature_service: str
    features: list[FeatureInfo]
    join_keys: list[str]
    request_fields: list[str]
    inputs: list[InputInfo] = Field(default_factory=list)
    id_field: str = ""  # the label source's id column: requests echo it, the log keeps it
    time_field: str = ""  # a request's time field (see fsml.featurestore)
    ttl_seconds: dict[str, float]
    label: str
    threshold: float
    training_window: dict[str, str]
    metrics: dict[str, float]
    reference: dict[str, dict[str, Any]] = Field(default_factory=dict)
    score_reference: dict[str, Any] = Field(default_factory=dict)
    data_fingerprint: str = ""
    calibration: dict[str, Any] = Field(default_factory=dict)  # fsml.calibration, fitted on validation
    score_tail: dict[str, Any] = Field(default_factory=dict)  # decision rate and upper tail, test window
    segments: dict[str, Any] = Field(default_factory=dict)  # segment column -> value -> references

    @property
    def columns(self) -> list[str]:
        return [f.column for f in self.features]


class FeatureEncoder:
    """Feature values to a float64 matrix in the booster's column order.

    Numbers pass through (missing becomes NaN); strings become their index in the training
    vocabulary, and a value never seen in training becomes NaN, which LightGBM treats as missing.
    """

    def __init__(self, features: Sequence[FeatureInfo]) -> None:
        self.features = list(features)
        self.columns = [f.column for f in self.features]
        self._codes = {
            f.column: {value: float(code) for code, value in enumerate(f.categories or [])}
            for f in self.features
            if f.dtype == "string"
        }
        self._plan = [(column, self._codes.get(column)) for column in self.columns]

    @property
    def categorical_indices(self) -> list[int]:
        return [i for i, f in enumerate(self.features) if f.dtype == "string"]

    def frame(self, df: pd.DataFrame | pa.Table) -> np.ndarray:
        """Encode a DataFrame or an Arrow table holding every feature column."""
        if isinstance(df, pa.Table):
            return self.arrow(df)
        out = np.empty((len(df), len(self.columns)), dtype=np.float64)
        for i, column in enumerate(self.columns):
            codes = self._codes.get(column)
            if codes is None:
                out[:, i] = pd.to_numeric(df[column], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
            else:
                out[:, i] = df[column].map(codes).to_numpy(dtype=np.float64, na_value=np.nan)
        return out

    def arrow(self, table: pa.Table) -> np.ndarray:
        """The same matrix from Arrow columns, without a DataFrame: numbers cast to float64
        (nulls become NaN), strings looked up in the vocabulary by ``index_in``."""
        out = np.empty((table.num_rows, len(self.columns)), dtype=np.float64)
        for i, column in enumerate(self.columns):
            values = table[column]
            codes = self._codes.get(column)
            if codes is None and (pa.types.is_integer(values.type) or pa.types.is_floating(values.type)):
                values = pc.cast(values, pa.float64())
            elif codes is None:  # booleans, text holding numbers: pandas' coercion, as for a frame
                values = pa.array(pd.to_numeric(values.to_pandas(), errors="coerce"), pa.float64(), from_pandas=True)
            else:
                vocabulary = pa.array(list(codes), pa.string())
                values = pc.cast(pc.index_in(pc.cast(values, pa.string()), value_set=vocabulary), pa.float64())
            out[:, i] = values.to_numpy(zero_copy_only=False)  # nulls of a float column are NaN
        return out

    def row(self, values: Mapping[str, Any]) -> list[float]:
        """Encode one row given as ``{column: value}`` (absent or None means missing)."""
        out = []
        nan = math.nan
        for column, codes in self._plan:
            value = values.get(column)
            if value is None:
                out.append(nan)
            elif codes is None:
                out.append(float(value))
            else:
                out.append(codes.get(value, nan))
        return out


def vocabularies(df: pd.DataFrame, features: Sequence[FeatureInfo]) -> list[FeatureInfo]:
    """Attach to each string feature its sorted vocabulary as seen in ``df``."""
    out = []
    for feature in features:
        if feature.dtype == "string":
            values = sorted(str(v) for v in df[feature.column].dropna().unique())
            feature = feature.model_copy(update={"categories": values})
        out.append(feature)
    return out


@dataclass
class ModelBundle:
    """A loaded model: the booster's text, the booster itself and its card."""

    booster_text: str
    card: ModelCard
    version: str = ""
    booster: Any = None

    def __post_init__(self) -> None:
        if self.booster is None:
            import lightgbm as lgb

            self.booster = lgb.Booster(model_str=self.booster_text)
        self.encoder = FeatureEncoder(self.card.features)

    def predict_matrix(self, matrix: np.ndarray, num_threads: int = 1) -> np.ndarray:
        return self.booster.predict(matrix, num_threads=num_threads)

    def all_missing(self, absent: np.ndarray) -> np.ndarray:
        """Rows (of a rows × feature columns mask of absent values) whose stored features, the
        ones not computed on demand, are all absent."""
        stored = [i for i, f in enumerate(self.card.features) if not f.on_demand]
        return absent[:, stored].all(axis=1) if stored else np.zeros(len(absent), dtype=bool)

    def score_frame(self, features: pd.DataFrame, num_threads: int = 1, policy: str = REVIEW) -> pd.DataFrame:
        """Score, decision and whether everything stored was missing, per row of a frame of
        ``view__feature`` columns as Feast returns them with full feature names; other columns
        are ignored, absent columns are missing features."""
        absent_columns = [c for c in self.encoder.columns if c not in features.columns]
        if absent_columns:
            features = features.assign(**{c: np.nan for c in absent_columns})
        scores = self.predict_matrix(self.encoder.frame(features), num_threads)
        all_missing = self.all_missing(features[self.encoder.columns].isna().to_numpy())
        return pd.DataFrame(
            {
                "score": scores,
                "decision": decisions(scores, self.card.threshold, all_missing, policy),
                "all_missing": all_missing,
            },
            index=features.index,
        )

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / BOOSTER_FILE).write_text(self.booster_text)
        (directory / CARD_FILE).write_text(self.card.model_dump_json(indent=2))

    @classmethod
    def load(cls, directory: Path, version: str = "") -> ModelBundle:
        card = ModelCard.model_validate_json((directory / CARD_FILE).read_text())
        return cls(booster_text=(directory / BOOSTER_FILE).read_text(), card=card, version=version)


class SingleRowPredictor:
    """One row through LightGBM's single-row fast path, prepared once per model.

    ``Booster.predict`` spends about 100 µs per call validating and converting its input before
    the trees run; ``LGBM_BoosterPredictForMatSingleRowFast`` with a configuration prepared at
    load time takes about 20 µs for the same score (a test checks they agree). The lightgbm
    package exposes this C function but no Python wrapper for it. Not thread-safe: one per
    thread, here the serving event loop's.
    """

    def __init__(self, booster: Any, columns: int) -> None:
        import ctypes

        from lightgbm.basic import _C_API_DTYPE_FLOAT64, _C_API_PREDICT_NORMAL, _LIB, _c_str, _safe_call

        self._lib = _LIB
        self._booster = booster  # keeps the model alive as long as its configuration
        self._config = ctypes.c_void_p()
        _safe_call(
            _LIB.LGBM_BoosterPredictForMatSingleRowFastInit(
                booster._handle,
                ctypes.c_int(_C_API_PREDICT_NORMAL),
                ctypes.c_int(0),
                ctypes.c_int(-1),
                ctypes.c_int(_C_API_DTYPE_FLOAT64),
                ctypes.c_int32(columns),
                _c_str("num_threads=1"),
                ctypes.byref(self._config),
            )
        )
        self._row = np.zeros(columns, dtype=np.float64)
        self._out = np.zeros(1, dtype=np.float64)
        self._length = ctypes.c_int64(0)
        self._args = (
            self._config,
            self._row.ctypes.data_as(ctypes.c_void_p),
            ctypes.byref(self._length),
            self._out.ctypes.data_as(ctypes.POINTER(ctypes.c_double)),
        )
        self._call = _LIB.LGBM_BoosterPredictForMatSingleRowFast

    def __call__(self, row: Sequence[float]) -> float:
        self._row[:] = row
        if self._call(*self._args) != 0:
            raise RuntimeError("LightGBM single-row prediction failed")
        return float(self._out[0])

    def __del__(self) -> None:
        config = getattr(self, "_config", None)
        if config is not None and config.value:
            self._lib.LGBM_FastConfigFree(config)
