"""API schemas. Each model's request and response are built from its feature service: the
entity join keys and request fields it reads, its label source's id column (optional, echoed
back and logged, so labels can be joined to predictions later) and its request time field
(optional, default now). Any feature service is served without code changes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from fsml.featurestore import Input

INT64 = 2**63 - 1


class ModelRef(BaseModel):
    name: str
    version: str


class FeatureReport(BaseModel):
    missing: list[str]
    stale: list[str]
    values: dict[str, Any] | None = None


class Prediction(BaseModel):
    """What every model answers; each model's response adds its id field."""

    score: float
    decision: str = Field(description="'flag' when score >= threshold, else 'pass'")
    threshold: float
    model: ModelRef
    features: FeatureReport


class ModelInfo(BaseModel):
    name: str
    version: str
    alias: str
    feature_service: str
    training_window: dict[str, str]
    metrics: dict[str, float]
    threshold: float
    features: list[str]
    loaded_at: str


class ReloadResponse(BaseModel):
    reloaded: bool
    previous_version: str | None
    version: str
    feature_service: str


def _field(spec: Input) -> tuple[Any, Any]:
    if spec.dtype == "timestamp":
        return datetime | None, Field(None, description="When it happens; default now (UTC).")
    if spec.dtype == "string":
        return str, Field(..., min_length=1, max_length=256)
    if spec.dtype == "int":
        low = int(spec.minimum) if spec.minimum is not None else -INT64 - 1
        return int, Field(..., ge=low, le=INT64, strict=True)
    low = spec.minimum if spec.minimum is not None else None
    return float, Field(..., ge=low, allow_inf_nan=False)


def _id_field() -> tuple[Any, Any]:
    return int | str | None, Field(None, description="Identifies the prediction: echoed back and logged.")


def request_model(
    inputs: tuple[Input, ...], max_rows: int, id_field: str, time_field: str, suffix: str = ""
) -> tuple[type[BaseModel], type[BaseModel]]:
    """(single request, batch request) models of a feature service's inputs. ``suffix`` keeps
    the OpenAPI names of several models apart."""
    fields: dict[str, Any] = {} if any(i.name == id_field for i in inputs) else {id_field: _id_field()}
    fields |= {i.name: _field(i) for i in inputs}
    if time_field not in fields:
        fields[time_field] = _field(Input(time_field, "timestamp", "request"))
    config = ConfigDict(extra="forbid")
    single = create_model(f"PredictRequest{suffix}", __config__=config, **fields)
    batch = create_model(
        f"BatchPredictRequest{suffix}",
        __config__=config,
        rows=(list[single], Field(..., min_length=1, max_length=max_rows)),  # type: ignore[valid-type]
    )
    return single, batch


def response_model(id_field: str, suffix: str = "") -> tuple[type[BaseModel], type[BaseModel]]:
    """(single, batch) responses: a prediction with the request's id under the id field's name."""
    single = create_model(f"PredictResponse{suffix}", __base__=Prediction, **{id_field: _id_field()})
    batch = create_model(
        f"BatchResponse{suffix}",
        model=(ModelRef, ...),
        threshold=(float, ...),
        predictions=(list[single], ...),  # type: ignore[valid-type]
    )
    return single, batch
