"""The MLflow pyfunc face of an fsml model, so MLflow's own tools can use it alone.

``mlflow.pyfunc.load_model(uri).predict(frame)`` and ``mlflow models serve`` take the feature
columns as Feast returns them (``view__feature``: a historical frame, or the dict of lists of
``get_online_features(..., full_feature_names=True).to_dict()``) and answer score and decision
through ``ModelBundle.score_frame``, the encoder and threshold rule the service uses. The
booster stays LightGBM's text file and the card its JSON file, logged as the model's artifacts;
the model itself is logged as code (``fsml/mlflow_model.py``), not as a pickle.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.pyfunc import PythonModel

from fsml.model import BOOSTER_FILE, CARD_FILE, REVIEW, ModelBundle, ModelCard

MODEL_CODE = Path(__file__).with_name("mlflow_model.py")
POLICY_PARAM = "missing_features_decision"  # as FSML_MISSING_FEATURES_DECISION for the service
# Shipped with the model (MLflow ``code_paths``), so it loads where fsml is not installed.
SHIPPED_CODE = ("model.py", "pyfunc.py")


class FsmlPyfunc(PythonModel):
    def load_context(self, context: Any) -> None:
        card = ModelCard.model_validate_json(Path(context.artifacts["card"]).read_text())
        self.bundle = ModelBundle(booster_text=Path(context.artifacts["booster"]).read_text(), card=card)

    def predict(self, context, model_input, params=None):  # noqa: ANN001,ANN201  (MLflow reads type hints as a schema)
        policy = (params or {}).get(POLICY_PARAM, REVIEW)
        return self.bundle.score_frame(as_frame(model_input), policy=policy)


def as_frame(model_input: Any) -> pd.DataFrame:
    """A frame from what Feast hands out: a DataFrame, a dict of lists, or a list of rows."""
    if isinstance(model_input, pd.DataFrame):
        return model_input
    if isinstance(model_input, Mapping):
        return pd.DataFrame({k: list(v) if isinstance(v, list | tuple) else [v] for k, v in model_input.items()})
    return pd.DataFrame(list(model_input))


def artifacts(directory: Path, bundle: ModelBundle) -> dict[str, str]:
    """The booster and card files the pyfunc model is logged with."""
    bundle.save(directory)
    return {"booster": str(directory / BOOSTER_FILE), "card": str(directory / CARD_FILE)}


def code_package(directory: Path) -> str:
    """A minimal ``fsml`` package holding this module and the model code, for ``code_paths``."""
    package = directory / "fsml"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text('"""fsml\'s model code, shipped with an MLflow model."""\n')
    for name in SHIPPED_CODE:
        (package / name).write_text((Path(__file__).parent / name).read_text())
    return str(package)
