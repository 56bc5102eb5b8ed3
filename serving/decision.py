"""The decision for a score, and what it is when the store knew nothing about the row.

The rule itself is ``fsml.model.decision``, shared with batch scoring and the MLflow model: a
row whose stored features are all missing or stale is scored on request fields alone, so its
decision is the policy of ``FSML_MISSING_FEATURES_DECISION`` (``review`` by default, ``flag``, or
``pass`` for a service that chooses to fail open).
"""

from __future__ import annotations

from fsml.model import decision as decide
from fsml.model import decision_array as decide_arrow
from fsml.model import decisions as decide_many

__all__ = ["decide", "decide_arrow", "decide_many"]
