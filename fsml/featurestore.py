"""The Feast feature store as fsml uses it: opened from settings, applied, and described.

A ``ServiceSpec`` is everything the platform needs to know about a feature service to train,
serve and monitor it: the model's feature columns and their types, the entity join keys, the
request fields, the on-demand views, and the label source declared with ``fsml.*`` tags.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fsml.errors import FsmlError
from fsml.settings import Settings
from fsml.tables import parquet_files, quote_name, scan

if TYPE_CHECKING:
    from feast import FeatureService, FeatureStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Feature:
    """One model input: ``view__name`` as Feast returns it with full feature names."""

    view: str
    name: str
    dtype: str  # "float", "int" or "string"
    on_demand: bool = False
    drift_thresholds: tuple[tuple[str, float], ...] = ()  # from field tags fsml.drift.<statistic>

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
    path: Path
    timestamp: str
    label: str
    available_at: str
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

    @property
    def columns(self) -> list[str]:
        return [f.column for f in self.features]


def open_store(settings: Settings) -> FeatureStore:
    """Load the repo's ``feature_store.yaml`` with this process's settings expanded into it."""
    settings.export()
    from feast import FeatureStore

    try:
        return FeatureStore(repo_path=str(settings.feature_repo))
    except Exception as exc:  # Feast raises many types for a bad yaml; one line is enough here
        raise FsmlError(f"cannot load feature repo {settings.feature_repo}: {exc}") from None


def apply_repo(settings: Settings) -> str:
    """Register every object of the feature repo, as ``feast apply`` does; return the diff."""
    from feast import Project
    from feast.repo_operations import extract_objects_for_apply_delete

    (settings.home / "feast").mkdir(parents=True, exist_ok=True)
    store = open_store(settings)
    repo = parse_repo(settings.feature_repo)
    if not repo.projects:
        repo.projects.append(Project(name=store.project))
    registry_diff, _, _ = store.plan(repo)
    to_apply, to_delete, _, _ = extract_objects_for_apply_delete(store.project, store.registry, repo)
    store.apply(to_apply, objects_to_delete=to_delete, partial=False)
    return registry_diff.to_string()


def parse_repo(repo_path: Path):
    """Feast's ``parse_repo`` run the way its CLI runs it: from inside the repo directory.

    Feast names repo modules relative to the working directory and imports them; modules from a
    previous parse are dropped first so that definitions read the current environment.
    """
    from feast.repo_operations import get_repo_files
    from feast.repo_operations import parse_repo as feast_parse_repo

    names = {p.relative_to(repo_path).with_suffix("").as_posix().replace("/", ".") for p in get_repo_files(repo_path)}
    for name in names:
        sys.modules.pop(name, None)
    previous = os.getcwd()
    sys.path.insert(0, str(repo_path))
    try:
        os.chdir(repo_path)
        return feast_parse_repo(repo_path)
    finally:
        os.chdir(previous)
        sys.path.remove(str(repo_path))


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


def _dtype(field_dtype: object, allowed: tuple[str, ...] = ("float", "int", "string")) -> str:
    kind = _DTYPES.get(str(field_dtype))
    if kind not in allowed:
        raise FsmlError(f"type {field_dtype} is not supported by fsml models")
    return kind


def _input(field: Any, kind: str) -> Input:
    minimum = (field.tags or {}).get("fsml.min")
    dtype = _dtype(field.dtype, ("float", "int", "string", "timestamp"))
    return Input(field.name, dtype, kind, float(minimum) if minimum is not None else None)


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
        for field in projection.features:
            limits = tuple(
                (k.removeprefix("fsml.drift."), float(v))
                for k, v in sorted((field.tags or {}).items())
                if k.startswith("fsml.drift.")
            )
            features.append(Feature(view_name, field.name, _dtype(field.dtype), on_demand, limits))
        if on_demand:
            odfv = odfvs[projection.name]
            for source in odfv.source_request_sources.values():
                for field in source.schema:
                    inputs.setdefault(field.name, _input(field, "request"))
            key_views = [views[p.name] for p in odfv.source_feature_view_projections.values()]
        else:
            view = views[projection.name]
            key_views = [view]
            ttls[view_name] = view.ttl.total_seconds() if view.ttl else 0.0
            if getattr(view.batch_source, "path", None):
                paths[view_name] = Path(view.batch_source.path)
        for key_view in key_views:
            for column in key_view.entity_columns:
                inputs.setdefault(column.name, _input(column, "key"))
    join_keys = [i.name for i in inputs.values() if i.kind == "key"]
    request_fields = [i.name for i in inputs.values() if i.kind == "request"]
    return ServiceSpec(
        name=name,
        features=tuple(features),
        join_keys=tuple(join_keys),
        request_fields=tuple(request_fields),
        ttl_seconds=ttls,
        label_source=_label_source(store, service),
        offline_paths=paths,
        inputs=tuple(sorted(inputs.values(), key=lambda i: i.kind != "key")),
    )


def _label_source(store: FeatureStore, service: FeatureService) -> LabelSource:
    source_name = service.tags.get("fsml.label_source")
    if not source_name:
        raise FsmlError(f"feature service {service.name!r} has no 'fsml.label_source' tag naming its labels")
    try:
        source = store.get_data_source(source_name)
    except Exception:
        raise FsmlError(f"label source {source_name!r} of {service.name!r} is not registered") from None
    if source.tags.get("fsml.labels"):
        return _pushed_labels(store, source)
    tags = source.tags
    missing = [t for t in ("fsml.label", "fsml.label_available_at", "fsml.id") if t not in tags]
    if missing or not hasattr(source, "path"):
        raise FsmlError(f"label source {source_name!r} needs a file path and tags {missing}")
    return LabelSource(
        name=source_name,
        path=Path(source.path),
        timestamp=source.timestamp_field,
        label=tags["fsml.label"],
        available_at=tags["fsml.label_available_at"],
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
        path=Path(rows.path),
        timestamp=rows.timestamp_field,
        label=labels.tags["fsml.label"],
        available_at=known.timestamp_field,
        id=source.tags["fsml.id"],
        labels_path=Path(known.path),
    )


def list_views(store: FeatureStore) -> list[Any]:
    """Every batch and stream feature view: Feast lists them apart."""
    import warnings

    with warnings.catch_warnings():  # "stream feature views are experimental"
        warnings.simplefilter("ignore", RuntimeWarning)
        return [*store.list_feature_views(), *store.list_stream_feature_views()]
