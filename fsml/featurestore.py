"""Feature services described for the platform, from the repo's own declarations.

A ``ServiceSpec`` is everything the platform needs to know about a feature service to train,
serve and monitor it: the model's feature columns and their types, the entity join keys, the
request fields, the on-demand views, the request's time field, the label source, and the segments
the monitor breaks its views down by (``fsml.segment`` on a feature field or an entity). Nothing
here names an example's columns; a repo declares them:

- a label source is a Feast ``FileSource`` tagged ``fsml.label`` (the label column) and
  ``fsml.id`` (the column that identifies a prediction), optionally
  ``fsml.label_available_at`` (when each label becomes known; default: at its row's time);
  its ``timestamp_field`` is each row's time;
- a feature service names its label source with the tag ``fsml.label_source``, or uses the
  repo's only label source; it may override ``fsml.label``, ``fsml.id`` and
  ``fsml.label_available_at`` with tags of its own (two models, two labels, one file);
- a request's time field is the ``UnixTimestamp`` field of the service's request sources if
  there is one, else the label source's ``timestamp_field``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fsml.errors import FsmlError
from fsml.repo import apply_repo, open_store, parse_repo
from fsml.tables import parquet_files, quote_name, scan

if TYPE_CHECKING:
    from feast import FeatureService, FeatureStore

__all__ = [
    "Feature",
    "Input",
    "LabelSource",
    "ServiceSpec",
    "apply_repo",
    "describe_service",
    "get_service",
    "open_store",
    "parse_repo",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Feature:
    """One model input: ``view__name`` as Feast returns it with full feature names."""

    view: str
    name: str
    dtype: str  # "float", "int" or "string"
    on_demand: bool = False
    drift_thresholds: tuple[tuple[str, float], ...] = ()  # from field tags fsml.drift.<statistic>
    segment: bool = False  # field tag ``fsml.segment``: drift and performance per value
    keys: tuple[str, ...] = ()  # join keys of the view (of an on-demand view: of its sources)

    @property
    def column(self) -> str:
        return f"{self.view}__{self.name}"

    @property
    def categorical(self) -> bool:
        return self.dtype == "string"


@dataclass(frozen=True)
class Input:
    """A value the caller provides: an entity join key or a request field."""

    name: str
    dtype: str  # "int", "float", "string" or "timestamp"
    kind: str  # "key" or "request"
    minimum: float | None = None  # from the field tag ``fsml.min``


@dataclass(frozen=True)
class LabelSource:
    """Where labelled entity rows for training come from: a Feast FileSource with fsml tags, or a
    push source whose labels are pushed apart (``fsml.labels`` names that source; joined by id)."""

    name: str
    path: Path  # absolute: relative paths are the repo's
    timestamp: str  # the source's timestamp_field: when each row happened
    label: str
    available_at: str  # when each label becomes known; the timestamp column if not declared
    id: str
    labels_path: Path | None = None  # the separate labels' rows, when they are pushed apart

    def exists(self) -> bool:
        return bool(parquet_files(self.path))

    def relation(self) -> str:
        """The labelled rows as a DuckDB relation: the rows with their label and label time
        (null while a label is unknown)."""
        rows = scan(self.path)
        if self.labels_path is None:
            return rows
        label, at, key = (quote_name(c) for c in (self.label, self.available_at, self.id))
        if not parquet_files(self.labels_path):
            return f"(SELECT *, NULL::BIGINT AS {label}, NULL::TIMESTAMPTZ AS {at} FROM {rows})"
        return (
            f"(SELECT r.*, l.{label}, l.{at} FROM {rows} r "
            f"LEFT JOIN (SELECT {key}, {label}, {at} FROM {scan(self.labels_path)}) l ON r.{key} = l.{key})"
        )


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    features: tuple[Feature, ...]
    join_keys: tuple[str, ...]
    request_fields: tuple[str, ...]
    ttl_seconds: dict[str, float]  # per feature view; 0 means no expiry
    label_source: LabelSource
    offline_paths: dict[str, Path]  # per feature view backed by a file
    inputs: tuple[Input, ...] = ()
    segment_keys: tuple[str, ...] = ()  # join keys of entities tagged ``fsml.segment``
    time_field: str = "event_timestamp"  # a request's time, see the module docstring

    @property
    def columns(self) -> list[str]:
        return [f.column for f in self.features]

    @property
    def segments(self) -> list[str]:
        """Training-set columns to segment by: tagged features, then tagged entities' keys."""
        return [f.column for f in self.features if f.segment] + list(self.segment_keys)

    def segment_features(self) -> dict[str, list[str]]:
        """Per segment column, the features compared inside its segments: all but those of the
        segment's own entity, which inside a segment describe its few members, not a population."""
        out = {}
        for segment in self.segments:
            own = next((f.keys for f in self.features if f.column == segment), (segment,))
            out[segment] = [f.column for f in self.features if f.keys != own]
        return out

    @property
    def id_field(self) -> str:
        return self.label_source.id

    @property
    def time_is_input(self) -> bool:
        """Whether the time field is a request field the on-demand views read."""
        return self.time_field in self.request_fields


def get_service(store: FeatureStore, name: str) -> FeatureService:
    from feast.errors import FeatureServiceNotFoundException

    try:
        return store.get_feature_service(name)
    except FeatureServiceNotFoundException:
        known = sorted(s.name for s in store.list_feature_services())
        hint = ", ".join(known) if known else "none: run `fsml features apply`"
        raise FsmlError(f"unknown feature service {name!r} (known: {hint})") from None


_DTYPES = {
    "Float32": "float",
    "Float64": "float",
    "Int32": "int",
    "Int64": "int",
    "Bool": "int",
    "String": "string",
    "UnixTimestamp": "timestamp",
}
FEATURE_TYPES = ("float", "int", "string")
INPUT_TYPES = ("float", "int", "string", "timestamp")
KEY_TYPES = ("Int32", "Int64", "String")  # what Feast's v3 entity keys and fsml's reader encode


def _dtype(field: Any, where: str, allowed: tuple[str, ...]) -> str:
    """fsml's kind of a Feast field type; anything else is an error naming the view and field."""
    kind = _DTYPES.get(str(field.dtype))
    if kind not in allowed:
        usable = ", ".join(k for k, v in _DTYPES.items() if v in allowed)
        raise FsmlError(f"{where}: {field.name!r} has type {field.dtype}, which fsml models cannot use ({usable})")
    return kind


def _input(field: Any, kind: str, where: str) -> Input:
    minimum = (field.tags or {}).get("fsml.min")
    if kind == "key" and str(field.dtype) not in KEY_TYPES:
        served = ", ".join(KEY_TYPES)
        raise FsmlError(f"{where}: join key {field.name!r} has type {field.dtype}; fsml serves {served} keys")
    dtype = _dtype(field, where, INPUT_TYPES)
    return Input(field.name, dtype, kind, float(minimum) if minimum is not None else None)


def resolve_path(store: FeatureStore, path: str) -> Path:
    """A source path as Feast reads it: relative paths are the repo's."""
    from feast.infra.offline_stores.file_source import FileSource

    return Path(FileSource.get_uri_for_file_path(store.repo_path, path))


def describe_service(store: FeatureStore, name: str) -> ServiceSpec:
    """Resolve a feature service into the model's inputs and its label source."""
    service = get_service(store, name)
    odfvs = {v.name: v for v in store.list_on_demand_feature_views()}
    views = {v.name: v for v in list_views(store)}
    features, ttls, paths = [], {}, {}
    inputs: dict[str, Input] = {}
    for projection in service.feature_view_projections:
        view_name = projection.name_to_use()
        on_demand = projection.name in odfvs
        if on_demand:
            sources = [views[p.name] for p in odfvs[projection.name].source_feature_view_projections.values()]
        else:
            sources = [views[projection.name]]
        keys = tuple(dict.fromkeys(c.name for v in sources for c in v.entity_columns))
        where = f"feature service {name!r}, {'on-demand ' if on_demand else ''}feature view {view_name!r}"
        for field in projection.features:
            limits = tuple(
                (k.removeprefix("fsml.drift."), float(v))
                for k, v in sorted((field.tags or {}).items())
                if k.startswith("fsml.drift.")
            )
            kind = _dtype(field, where, FEATURE_TYPES)
            segment = _truthy((field.tags or {}).get("fsml.segment"))
            features.append(Feature(view_name, field.name, kind, on_demand, limits, segment, keys))
        if on_demand:
            for source in odfvs[projection.name].source_request_sources.values():
                for field in source.schema:
                    inputs.setdefault(field.name, _input(field, "request", f"request source {source.name!r}"))
        else:
            view = views[projection.name]
            ttls[view_name] = view.ttl.total_seconds() if view.ttl else 0.0
            if getattr(view.batch_source, "path", None):
                paths[view_name] = resolve_path(store, view.batch_source.path)
        for key_view in sources:
            for column in key_view.entity_columns:
                inputs.setdefault(column.name, _input(column, "key", f"feature view {key_view.name!r}"))
    join_keys = [i.name for i in inputs.values() if i.kind == "key"]
    request_fields = [i.name for i in inputs.values() if i.kind == "request"]
    tagged = {e.join_key for e in store.list_entities() if _truthy((e.tags or {}).get("fsml.segment"))}
    label_source = _label_source(store, service)
    times = [i.name for i in inputs.values() if i.kind == "request" and i.dtype == "timestamp"]
    return ServiceSpec(
        name=name,
        features=tuple(features),
        join_keys=tuple(join_keys),
        request_fields=tuple(request_fields),
        ttl_seconds=ttls,
        label_source=label_source,
        offline_paths=paths,
        inputs=tuple(sorted(inputs.values(), key=lambda i: i.kind != "key")),
        time_field=times[0] if times else label_source.timestamp,
        segment_keys=tuple(k for k in join_keys if k in tagged),
    )


def _truthy(tag: str | None) -> bool:
    return tag is not None and tag.strip().lower() not in ("", "0", "false", "no")


LABEL_TAGS = ("fsml.label", "fsml.id", "fsml.label_available_at")


def _label_source(store: FeatureStore, service: FeatureService) -> LabelSource:
    source = _find_label_source(store, service)
    if source.tags.get("fsml.labels"):
        return _pushed_labels(store, source)
    tags = {**source.tags, **{k: v for k, v in service.tags.items() if k in LABEL_TAGS}}
    missing = [t for t in LABEL_TAGS[:2] if not tags.get(t)]
    path = getattr(source, "path", None)
    if missing or not path:
        needs = ["a file path"] if not path else []
        needs += [f"the tag {t!r}" for t in missing]
        raise FsmlError(f"label source {source.name!r} of {service.name!r} needs {' and '.join(needs)}")
    return LabelSource(
        name=source.name,
        path=resolve_path(store, path),
        timestamp=source.timestamp_field,
        label=tags["fsml.label"],
        available_at=tags.get("fsml.label_available_at") or source.timestamp_field,
        id=tags["fsml.id"],
    )


def _pushed_labels(store: FeatureStore, source: Any) -> LabelSource:
    """Rows of one push source, labels of another (its ``fsml.label`` tag; its event time is
    when the label became known), joined on the rows' ``fsml.id``."""
    name = source.tags["fsml.labels"]
    try:
        labels = store.get_data_source(name)
    except Exception:
        raise FsmlError(f"labels source {name!r} of {source.name!r} is not registered") from None
    rows, known = getattr(source, "batch_source", source), getattr(labels, "batch_source", labels)
    if not source.tags.get("fsml.id") or not labels.tags.get("fsml.label") or not getattr(known, "path", None):
        raise FsmlError(f"{source.name!r} needs an 'fsml.id' tag and {name!r} an 'fsml.label' tag and a path")
    return LabelSource(
        name=source.name,
        path=resolve_path(store, rows.path),
        timestamp=rows.timestamp_field,
        label=labels.tags["fsml.label"],
        available_at=known.timestamp_field,
        id=source.tags["fsml.id"],
        labels_path=resolve_path(store, known.path),
    )


def list_views(store: FeatureStore) -> list[Any]:
    """Every batch and stream feature view: Feast lists them apart."""
    import warnings

    with warnings.catch_warnings():  # "stream feature views are experimental"
        warnings.simplefilter("ignore", RuntimeWarning)
        return [*store.list_feature_views(), *store.list_stream_feature_views()]


def _find_label_source(store: FeatureStore, service: FeatureService) -> Any:
    """The source the service names with ``fsml.label_source``, or the repo's only label source."""
    named = service.tags.get("fsml.label_source")
    if named:
        try:
            return store.get_data_source(named)
        except Exception:
            raise FsmlError(f"label source {named!r} of {service.name!r} is not registered") from None
    labelled = [s for s in store.list_data_sources() if "fsml.label" in (s.tags or {})]
    if len(labelled) == 1:
        return labelled[0]
    found = ", ".join(sorted(s.name for s in labelled)) if labelled else "none in the repo"
    raise FsmlError(
        f"feature service {service.name!r} has no label source: tag it with fsml.label_source naming a "
        f"FileSource tagged fsml.label and fsml.id (label sources: {found})"
    )
