"""The current champion against a freshly trained model, on the new model's test window.

Both are scored on the same rows, each with its own encoder and threshold, so the training
report's table compares like with like (the champion's recorded figures come from an older
window). A champion whose features are not all in the new training set is reported by its
recorded figures and said to be so.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from fsml.training.dataset import TrainingSet
from fsml.training.evaluate import metrics
from fsml.training.train import TrainedModel

from fsml import registry
from fsml.errors import FsmlError
from fsml.model import ModelBundle
from fsml.settings import Settings

log = logging.getLogger(__name__)

SHOWN = ("pr_auc", "roc_auc", "recall_at_1pct_fpr", "precision_at_threshold", "recall_at_threshold", "log_loss")


def champion_comparison(settings: Settings, trained: TrainedModel, training_set: TrainingSet) -> dict[str, Any]:
    """``{"champion": version or None, "note": str, "rows": [{measure, champion, challenger}]}``."""
    card = trained.bundle.card
    test = training_set.parts["test"]
    y = test["label"].to_numpy(np.int64)
    mine = metrics(y, trained.test_predictions["score"].to_numpy(), card.threshold)
    champion = _champion(settings, card.model_name)
    if champion is None:
        theirs, note = {}, "No champion yet: this model competes against the promotion floors"
    elif all(c in test.columns for c in champion.card.columns):
        scores = champion.predict_matrix(champion.encoder.frame(test))
        theirs = metrics(y, scores, champion.card.threshold)
        note = f"Both scored on this model's test window ({len(y):,} rows), each with its own threshold"
    else:
        theirs = {k.removeprefix("test_"): v for k, v in champion.card.metrics.items() if k.startswith("test_")}
        note = "The champion reads other features: its figures are from its own test window"
    rows = [{"measure": m, "champion": theirs.get(m, ""), "challenger": mine[m]} for m in SHOWN]
    rows.append({"measure": "threshold", "champion": champion.card.threshold if champion else "",
                 "challenger": card.threshold})  # fmt: skip
    return {"champion": champion.version if champion else None, "note": note, "rows": rows}


def _champion(settings: Settings, model_name: str) -> ModelBundle | None:
    try:
        version = registry.version_by_alias(registry.client(settings, create=False), model_name, registry.CHAMPION)
        return registry.load_bundle(version) if version is not None else None
    except FsmlError:  # no MLflow store yet: the first model
        return None
