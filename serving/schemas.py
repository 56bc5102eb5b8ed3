"""API schemas. The prediction request is built from the feature service's inputs, so any
feature service is served without code changes; for the fraud service it reads
``{transaction_id?, customer_id, merchant_id, amount, timestamp?}``."""

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


class Recorded(BaseModel):
    accepted: int
    duplicates: int


class PredictResponse(BaseModel):
    transaction_id: int | str | None = None
    score: float
    decision: str = Field(description="'flag' when score >= threshold, else 'pass'")
    threshold: float
    model: ModelRef
    features: FeatureReport
    recorded: Recorded | None = Field(None, description="With record: true, what the push of the row did.")


class BatchResponse(BaseModel):
    model: ModelRef
    threshold: float
    predictions: list[PredictResponse]
    recorded: Recorded | None = None


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


def request_model(inputs: tuple[Input, ...], max_rows: int) -> tuple[type[BaseModel], type[BaseModel]]:
    """(single request, batch request) models for the given inputs."""
    fields: dict[str, Any] = {"transaction_id": (int | str | None, Field(None, description="Echoed back; logged."))}
    fields |= {i.name: _field(i) for i in inputs}
    config = ConfigDict(extra="forbid")
    row = create_model("PredictRow", __config__=config, **fields)
    record = (bool, Field(False, description="Also push the scored row to the service's label source."))
    single = create_model("PredictRequest", __base__=row, record=record)
    batch = create_model(
        "BatchPredictRequest",
        __config__=config,
        rows=(list[row], Field(..., min_length=1, max_length=max_rows)),  # type: ignore[valid-type]
        record=record,
    )
    return single, batch
