"""The API's documentation: examples for every schema, the error answers, offline assets.

Swagger UI and ReDoc are served by the service from the ``fastapi-offline`` package (pinned in
``uv.lock``), so ``/docs`` and ``/redoc`` work without a network. The request schema is built
from the feature service at start-up, and so is its example: one value per input, from the
input's type and declared minimum; no example names a field of its own.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from fsml.featurestore import Input


class ErrorBody(BaseModel):
    """What every error answers: a sentence, or for 422 the list of bad fields."""

    detail: str | list[dict[str, Any]]


def _error(description: str, detail: Any) -> dict[str, Any]:
    return {
        "model": ErrorBody,
        "description": description,
        "content": {"application/json": {"example": {"detail": detail}}},
    }


UNAUTHORIZED = {401: _error("Missing or wrong X-API-Key (or FSML_API_KEY is not set)", "missing or wrong X-API-Key")}
TOO_LARGE = {413: _error("The body is larger than the service accepts", "request body too large")}
INVALID = {
    422: _error(
        "A field is missing, of the wrong type or out of range; each error names its field",
        [{"type": "missing", "loc": ["body", "<field>"], "msg": "Field required"}],
    )
}
UNAVAILABLE = {503: _error("No model loaded yet, or the online store is down: retry later", "online store unavailable")}
PREDICT_ERRORS = {**TOO_LARGE, **INVALID, **UNAVAILABLE}
ADMIN_ERRORS = {**UNAUTHORIZED, **UNAVAILABLE}


def example_value(spec: Input) -> Any:
    if spec.dtype == "timestamp":
        return datetime.now(UTC).replace(microsecond=0).isoformat()
    if spec.dtype == "string":
        return "example"
    low = spec.minimum if spec.minimum is not None else 0
    return max(int(low), 1) if spec.dtype == "int" else round(max(float(low), 0.0) + 25.0, 2)


def examples(inputs: tuple[Input, ...], model_name: str) -> dict[str, dict[str, Any]]:
    """An example per schema of the OpenAPI document, by schema name."""
    request = {i.name: example_value(i) for i in inputs}
    features = {"missing": [], "stale": [], "all_missing": False}
    model = {"name": model_name, "version": "3"}
    prediction = {"score": 0.0123, "decision": "pass", "threshold": 0.42, "model": model, "features": features}
    return {
        "PredictRequest": request,
        "PredictRow": request,
        "Recorded": {"accepted": 1, "duplicates": 0},
        "BatchPredictRequest": {"rows": [request, request]},
        "PredictResponse": prediction,
        "BatchResponse": {
            "model": model,
            "threshold": 0.42,
            "predictions": [prediction, {**prediction, "score": 0.71, "decision": "flag"}],
        },  # fmt: skip
        "FeatureReport": {"missing": [], "stale": ["<view>__<feature>"], "all_missing": False},
        "ModelRef": model,
        "ModelInfo": {
            "name": model_name,
            "version": "3",
            "alias": "champion",
            "feature_service": "<feature service>",
            "training_window": {"as_of": "2026-11-01T00:00:00+00:00"},
            "metrics": {"test_pr_auc": 0.61},
            "threshold": 0.42,
            "features": ["<view>__<feature>"],
            "loaded_at": "2026-11-02T08:00:00+00:00",
        },  # fmt: skip
        "ReloadResponse": {"reloaded": True, "previous_version": "2", "version": "3"},
        "RetrainRequest": {"reason": "new labels arrived"},
        "ErrorBody": {"detail": "online store unavailable (ConnectionError); retry later"},
        "HTTPValidationError": {"detail": [{"type": "missing", "loc": ["body", "<field>"], "msg": "Field required"}]},
        "ValidationError": {"type": "missing", "loc": ["body", "<field>"], "msg": "Field required"},
    }


PER_MODEL = ("PredictRequest", "PredictRow", "BatchPredictRequest", "PredictResponse", "BatchResponse")


def document(app: Any, models: list[tuple[tuple[Input, ...], str, str]]) -> None:
    """Add the examples to the OpenAPI document FastAPI generates (once, on first request).

    ``models`` holds (inputs, registered model name, schema-name suffix) per hosted model: each
    model's request and response schemas get examples of their own; the others, the first's.
    """
    generate = app.openapi
    known: dict[str, dict[str, Any]] = {}
    for inputs, model_name, suffix in reversed(models):
        for name, example in examples(inputs, model_name).items():
            known[name + suffix if name in PER_MODEL else name] = example

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            for name, component in schema.get("components", {}).get("schemas", {}).items():
                if name in known:
                    component["examples"] = [known[name]]
        return app.openapi_schema

    app.openapi = openapi
