"""What a Feast repo says about the rows pushed to it: one ``PushSchema`` per ``PushSource``.

Feast's ``PushSource`` has no schema of its own; the views it feeds have one. A pushed row's
columns are the union of those views' entity join keys and fields (types and ``fsml.min`` /
``fsml.max`` tags included), the event time (the source's ``batch_source.timestamp_field``)
and the row id named by the source's ``fsml.id`` tag. Window views fed by the source add the
columns their aggregations read. The batch source's path is the directory where the source's
rows land offline (``fsml.features.eventlog``).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fsml.features.windows import WindowView, from_feast

from fsml.errors import FsmlError
from fsml.tables import table_dir

if TYPE_CHECKING:
    from feast import FeatureStore

log = logging.getLogger(__name__)

KINDS = {
    "Int64": "int",
    "Int32": "int",
    "Float64": "float",
    "Float32": "float",
    "String": "string",
    "Bool": "int",
    "UnixTimestamp": "timestamp",
}


@dataclass(frozen=True)
class Column:
    name: str
    dtype: str  # "int", "float", "string" or "timestamp"
    minimum: float | None = None
    maximum: float | None = None


@dataclass(frozen=True)
class PushSchema:
    name: str
    id: str
    timestamp: str
    columns: tuple[Column, ...]  # the id and the event time included
    path: Path  # where the source's rows are kept offline
    windows: tuple[WindowView, ...] = ()  # views whose online state pushes update
    tags: tuple[tuple[str, str], ...] = ()

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    def tag(self, name: str) -> str | None:
        return dict(self.tags).get(name)


@dataclass(frozen=True)
class Repo:
    """The push sources, window views and everything else the pipeline reads from Feast."""

    project: str
    sources: dict[str, PushSchema]
    windows: tuple[WindowView, ...]
    feature_views: tuple[Any, ...]  # every batch feature view
    stream_views: tuple[Any, ...]  # every stream feature view
    data_sources: tuple[Any, ...]
    repo_path: Path
    untagged: tuple[str, ...] = ()  # push sources without an fsml.id tag, left to Feast

    def source(self, name: str) -> PushSchema:
        try:
            return self.sources[name]
        except KeyError:
            if name in self.untagged:
                raise FsmlError(
                    f"push source {name!r} has no 'fsml.id' tag: fsml takes pushes only to sources whose rows "
                    "carry an id (to count each row once); tag it, or push to it through Feast"
                ) from None
            known = ", ".join(sorted(self.sources)) or "none: run `fsml features apply`"
            raise FsmlError(f"unknown push source {name!r} (known: {known})") from None

    def window(self, name: str) -> WindowView:
        return next(w for w in self.windows if w.name == name)

    def path(self, path: str) -> Path:
        """A data source's path as Feast reads it: relative ones from the repo's directory."""
        return resolve(self.repo_path, path)


def resolve(repo_path: Path, path: str) -> Path:
    here = Path(path)
    return here if here.is_absolute() else repo_path / here


def load_repo(store: FeatureStore) -> Repo:
    """Read the registry once; stream views and push sources come back as Feast stores them."""
    from feast.data_source import PushSource

    with warnings.catch_warnings():  # "stream feature views are experimental"
        warnings.simplefilter("ignore", RuntimeWarning)
        stream_views = tuple(store.list_stream_feature_views())
    views = tuple(store.list_feature_views())
    data_sources = tuple(store.list_data_sources())
    pushes = [s for s in data_sources if isinstance(s, PushSource)]
    # A push source without an fsml.id tag (Feast's own template has one) is left to Feast.
    repo_path = Path(str(store.repo_path))
    schemas = {s.name: _schema(s, views, stream_views, repo_path) for s in pushes if s.tags.get("fsml.id")}
    windows = []
    for view in stream_views:
        if not view.aggregations:
            continue
        source = view.stream_source.name if view.stream_source is not None else ""
        if source not in schemas:
            raise FsmlError(
                f"stream feature view {view.name!r}: its source {source!r} is not a push source with an 'fsml.id' tag"
            )
        windows.append(from_feast(view, schemas[source].names, schemas[source].id))
    for name, schema in schemas.items():
        own = tuple(w for w in windows if w.source == name)
        schemas[name] = PushSchema(**{**schema.__dict__, "windows": own})
    return Repo(
        project=store.project,
        sources=schemas,
        windows=tuple(windows),
        feature_views=views,
        stream_views=stream_views,
        data_sources=data_sources,
        repo_path=repo_path,
        untagged=tuple(sorted(s.name for s in pushes if s.name not in schemas)),
    )


def _schema(source: Any, views: tuple[Any, ...], stream_views: tuple[Any, ...], repo_path: Path) -> PushSchema:
    batch = source.batch_source
    path = getattr(batch, "path", None)
    if not path:
        raise FsmlError(f"push source {source.name!r} needs a FileSource batch_source (where its rows land)")
    row_id = source.tags.get("fsml.id")
    fed = [v for v in (*views, *stream_views) if v.stream_source is not None and v.stream_source.name == source.name]
    columns: dict[str, Column] = {}
    for view in fed:
        for field in view.entity_columns:
            columns.setdefault(field.name, _column(view.name, field))
        if not getattr(view, "aggregations", None):
            for field in view.features:
                columns.setdefault(field.name, _column(view.name, field))
    if not row_id or row_id not in columns:
        raise FsmlError(
            f"push source {source.name!r} needs an 'fsml.id' tag naming a column of the views it feeds "
            f"(declared columns: {', '.join(columns) or 'none'})"
        )
    timestamp = batch.timestamp_field
    columns[timestamp] = Column(timestamp, "timestamp")
    return PushSchema(
        name=source.name,
        id=row_id,
        timestamp=timestamp,
        columns=tuple(columns.values()),
        path=table_dir(resolve(repo_path, path)),
        tags=tuple(sorted(source.tags.items())),
    )


def _column(view: str, field: Any) -> Column:
    kind = KINDS.get(str(field.dtype))
    if kind is None:
        raise FsmlError(f"{view}.{field.name}: type {field.dtype} cannot be pushed")
    tags = field.tags or {}
    low, high = tags.get("fsml.min"), tags.get("fsml.max")
    return Column(field.name, kind, float(low) if low is not None else None, float(high) if high is not None else None)
