"""The Feast feature store as fsml uses it: opened from settings, applied, and described.

A ``ServiceSpec`` is everything the platform needs to know about a feature service to train,
serve and monitor it: the model's feature columns and their types, the entity join keys, the
request fields, the on-demand views, the label source declared with ``fsml.*`` tags, and the
segments the monitor breaks its views down by (``fsml.segment`` on a feature field or an entity).
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
    """Where labelled entity rows for training come from (a Feast FileSource with fsml tags)."""

    name: str
    path: Path
    timestamp: str
    label: str
    available_at: str
    id: str


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
    views = {v.name: v for v in store.list_feature_views()}
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
        for field in projection.features:
            limits = tuple(
                (k.removeprefix("fsml.drift."), float(v))
                for k, v in sorted((field.tags or {}).items())
                if k.startswith("fsml.drift.")
            )
            segment = _truthy((field.tags or {}).get("fsml.segment"))
            features.append(Feature(view_name, field.name, _dtype(field.dtype), on_demand, limits, segment, keys))
        if on_demand:
            for source in odfvs[projection.name].source_request_sources.values():
                for field in source.schema:
                    inputs.setdefault(field.name, _input(field, "request"))
        else:
            view = views[projection.name]
            ttls[view_name] = view.ttl.total_seconds() if view.ttl else 0.0
            if getattr(view.batch_source, "path", None):
                paths[view_name] = Path(view.batch_source.path)
        for key_view in sources:
            for column in key_view.entity_columns:
                inputs.setdefault(column.name, _input(column, "key"))
    join_keys = [i.name for i in inputs.values() if i.kind == "key"]
    request_fields = [i.name for i in inputs.values() if i.kind == "request"]
    tagged = {e.join_key for e in store.list_entities() if _truthy((e.tags or {}).get("fsml.segment"))}
    return ServiceSpec(
        name=name,
        features=tuple(features),
        join_keys=tuple(join_keys),
        request_fields=tuple(request_fields),
        ttl_seconds=ttls,
        label_source=_label_source(store, service),
        offline_paths=paths,
        inputs=tuple(sorted(inputs.values(), key=lambda i: i.kind != "key")),
        segment_keys=tuple(k for k in join_keys if k in tagged),
    )


def _truthy(tag: str | None) -> bool:
    return tag is not None and tag.strip().lower() not in ("", "0", "false", "no")


def _label_source(store: FeatureStore, service: FeatureService) -> LabelSource:
    source_name = service.tags.get("fsml.label_source")
    if not source_name:
        raise FsmlError(f"feature service {service.name!r} has no 'fsml.label_source' tag naming its labels")
    try:
        source = store.get_data_source(source_name)
    except Exception:
        raise FsmlError(f"label source {source_name!r} of {service.name!r} is not registered") from None
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
