"""API schemas. Each model's request and response are built from its feature service: the
entity join keys and request fields it reads, its label source's id column (optional, echoed
back and logged, so labels can be joined to predictions later) and its request time field
(optional, default now). Any feature service is served without code changes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainValidator, WithJsonSchema, create_model

from fsml.featurestore import Input

INT64 = 2**63 - 1
# Request times outside these bounds are 422: Redis, Arrow and the model all work in UTC
# microseconds, and Python's datetime overflows near years 1 and 9999 when shifted to UTC.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def _valid_text(value: str) -> str:
    """JSON may escape lone surrogates (``"\\ud800"``); no UTF-8 writer can store them."""
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("must be valid Unicode text (it holds a lone surrogate)") from None
    return value


def _sane_time(value: datetime | None) -> datetime | None:
    """In UTC, and between EARLIEST and LATEST (a naive time is UTC)."""
    if value is None:
        return None
    try:
        moment = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:
        moment = None
    if moment is None or not EARLIEST <= moment < LATEST:
        raise ValueError(f"must be between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d} (UTC)")
    return moment


def _identifier(value: Any) -> int | str | None:
    """An id the caller chooses: a 64-bit integer or a short string (checked by hand so an error
    names the field, not the branch of a union)."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        if not -INT64 - 1 <= value <= INT64:
            raise ValueError("must fit in a signed 64-bit integer")
        return value
    if isinstance(value, str):
        if not 1 <= len(value) <= 256:
            raise ValueError("must be 1 to 256 characters")
        return _valid_text(value)
    raise ValueError("must be an integer, a string or null")


Text = Annotated[str, Field(min_length=1, max_length=256), AfterValidator(_valid_text)]
Identifier = Annotated[
    Any,
    PlainValidator(_identifier),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": -INT64 - 1, "maximum": INT64},
                {"type": "string", "minLength": 1, "maxLength": 256},
                {"type": "null"},
            ]
        }
    ),
]


class ModelRef(BaseModel):
    name: str
    version: str


class FeatureReport(BaseModel):
    missing: list[str]
    stale: list[str]
    all_missing: bool = Field(
        False,
        description="Every stored feature was missing or stale: the decision is FSML_MISSING_FEATURES_DECISION.",
    )
    values: dict[str, Any] | None = None


class Recorded(BaseModel):
    accepted: int
    duplicates: int


class Prediction(BaseModel):
    """What every model answers; each model's response adds its id field."""

    score: float
    decision: str = Field(
        description="'flag' when score >= threshold, else 'pass'; when all stored features are missing, "
        "FSML_MISSING_FEATURES_DECISION (default 'review')"
    )
    threshold: float
    model: ModelRef
    features: FeatureReport
    recorded: Recorded | None = Field(None, description="With record: true, what the push of the row did.")


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
        return Annotated[datetime | None, AfterValidator(_sane_time)], Field(
            None, description=f"When it happens; default now (UTC). From {EARLIEST:%Y} to {LATEST:%Y}."
        )
    if spec.dtype == "string":
        return Text, ...
    if spec.dtype == "int":
        low = int(spec.minimum) if spec.minimum is not None else -INT64 - 1
        return int, Field(..., ge=low, le=INT64, strict=True)
    low = spec.minimum if spec.minimum is not None else None
    # strict: a JSON string or boolean is not an amount (an integer still is)
    return float, Field(..., ge=low, allow_inf_nan=False, strict=True)


def _id_field() -> tuple[Any, Any]:
    return Identifier, Field(None, description="Identifies the prediction: echoed back and logged.")


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
    row = create_model(f"PredictRow{suffix}", __config__=config, **fields)
    record = (bool, Field(False, description="Also push the scored row to the service's label source."))
    single = create_model(f"PredictRequest{suffix}", __base__=row, record=record)
    batch = create_model(
        f"BatchPredictRequest{suffix}",
        __config__=config,
        rows=(list[row], Field(..., min_length=1, max_length=max_rows)),  # type: ignore[valid-type]
        record=record,
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
        recorded=(Recorded | None, None),
    )
    return single, batch
