"""Online features for a model, read straight from Feast's Redis layout.

Feast keeps one Redis hash per entity key, shared by the feature views with the same join keys;
a field is the murmur3 hash of ``view:feature`` holding a serialized ``ValueProto``, and
``_ts:<view>`` holds the row's event time. The ``OnlineReader`` works out once, when a model is
loaded, which hash and which fields each feature lives in, so a request costs one pipelined
``HMGET`` per entity and no registry lookup. Freshness is checked here because Feast's
``get_online_features`` ignores TTLs (feast issue 6821): a value older than its view's TTL is
reported stale and treated as missing, exactly as the offline point-in-time join drops it.
On-demand features are computed by the feature view's own function, the one Feast runs when
building training sets: a python-mode view gets a dict of lists (no DataFrame), a pandas-mode view
a DataFrame made as Feast makes it offline (an Arrow table of the declared types, ``to_pandas``),
so both give the values they give offline. A failure inside the function is an ``OnDemandFailed``
naming the view.
On-demand features are computed by the feature view's own Python function, the one Feast runs
when building training sets. Window views (``fsml.features.windows``) are computed here from the
entity's recent events, fetched in the same round trip, over ``[t - w, t)`` at the request's
time ``t``: exactly the offline point-in-time value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
from feast.infra.online_stores.helpers import _mmh3
from fsml.features.window_store import WindowKeys
from fsml.features.windows import WindowView

from fsml.errors import OnDemandFailed
from fsml.model import ModelCard
from fsml.stores.encoding import decode_timestamp, decode_value, key_prefix, key_value
from fsml.stores.ragged import bulk_string, pack
from fsml.stores.redis import marker_key


@dataclass(frozen=True)
class ViewRead:
    name: str
    features: tuple[str, ...]  # short names fetched from this view
    ttl_seconds: float  # 0: never stale
    columns: tuple[str, ...] = ()  # "view__feature", in the order of ``features``

    def column(self, feature: str) -> str:
        return f"{self.name}__{feature}"


@dataclass(frozen=True)
class EntityRead:
    """One Redis hash per request: the views keyed by these join keys."""

    join_keys: tuple[str, ...]
    key_types: tuple[Any, ...]  # Feast ValueType per join key
    views: tuple[ViewRead, ...]
    fields: tuple[bytes, ...]  # per view: its features' fields, then its _ts field
    prefix: bytes = b""  # the constant head of the serialized entity key
    order: tuple[int, ...] = ()  # join keys in the order Feast serializes them
    packed_fields: bytes = b""  # the HMGET command's field arguments, RESP-encoded once


# Arrow types of the scalar Feast types, for a pandas-mode view's input frame; others are inferred.
ARROW_TYPES = {
    "Float32": pa.float32(),
    "Float64": pa.float64(),
    "Int32": pa.int32(),
    "Int64": pa.int64(),
    "Bool": pa.bool_(),
    "String": pa.string(),
    "UnixTimestamp": pa.timestamp("us", tz="UTC"),
}


@dataclass(frozen=True)
class WindowRead:
    """A window view read as events: two commands per row (events, watermark)."""

    view: WindowView
    keys: WindowKeys
    features: tuple[str, ...]
    columns: tuple[str, ...]


@dataclass(frozen=True)
class OnDemand:
    name: str
    udf: Any  # the on-demand feature view's function
    mode: str  # "python" or "pandas"
    inputs: tuple[tuple[str, str], ...]  # (view, feature) it reads
    request_fields: tuple[str, ...]
    outputs: tuple[str, ...]
    join_keys: tuple[str, ...] = ()  # of its source views: Feast's offline frame has them too
    types: dict[str, Any] = field(default_factory=dict)  # Arrow type per input name (pandas mode)

    def run(self, inputs: dict[str, list[Any]], rows: int) -> dict[str, list[Any]]:
        """The view's outputs, one list per output feature, whatever the mode."""
        try:
            if self.mode == "pandas":
                out = self.udf(_frame(inputs, self.types, rows))
                return {name: out[name].tolist() for name in self.outputs}
            out = self.udf(inputs)
            return {name: list(out[name]) for name in self.outputs}
        except Exception as exc:
            raise OnDemandFailed(self.name, exc) from exc


def _frame(inputs: dict[str, list[Any]], types: dict[str, Any], rows: int) -> Any:
    """A DataFrame as Feast builds one offline: an Arrow table of the declared types, to pandas
    (so an integer column with a missing value is a float column there as here)."""
    arrays, loose = {}, {}
    for name, values in inputs.items():
        try:
            arrays[name] = pa.array(values, type=types.get(name))
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            loose[name] = values  # a value Arrow cannot take as declared: passed as objects
    frame = pa.table(arrays).to_pandas() if arrays else None
    if frame is None:
        import pandas as pd

        frame = pd.DataFrame(index=range(rows))
    for name, values in loose.items():
        frame[name] = values
    return frame


@dataclass
class FeatureVector:
    """One row of feature values by column, and what could not be used."""

    values: dict[str, Any] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)  # model inputs with no row in the store
    stale: list[str] = field(default_factory=list)  # model inputs whose row is older than the TTL
    unavailable: set[str] = field(default_factory=set)  # every fetched column missing or stale
    ages: dict[str, float] = field(default_factory=dict)  # view -> seconds since its row was written


class OnlineReader:
    """How to fetch, check and complete the features of one model from the online store."""

    def __init__(
        self,
        project: str,
        card: ModelCard,
        feature_views: Sequence[Any],
        on_demand_views: Sequence[Any],
        time_field: str | None = None,
        windows: Sequence[WindowView] = (),
        max_events: int = 10_000,
    ):
        self.project = project.encode()
        self.max_events = max_events
        self.card = card
        by_name = {v.name: v for v in feature_views}
        odfvs = {v.name: v for v in on_demand_views}
        needed: dict[str, list[str]] = {}
        for f in card.features:
            if not f.on_demand:
                needed.setdefault(f.view, []).append(f.name)
        self.on_demand = tuple(self._on_demand(odfvs[name], card, needed, by_name) for name in self._odfv_names(card))
        self.windows = tuple(
            WindowRead(w, WindowKeys(project, w.name), tuple(needed[w.name]),
                       tuple(f"{w.name}__{f}" for f in needed[w.name]))
            for w in windows if w.name in needed
        )  # fmt: skip
        self.entities = self._entities(by_name, {k: v for k, v in needed.items() if k not in {w.name for w in windows}})
        self.per_row = len(self.entities) + 2 * len(self.windows)
        self.model_columns = set(card.columns)
        self.views = (
            *(read.name for entity in self.entities for read in entity.views),
            *(w.view.name for w in self.windows),
        )
        # model columns read from the store: when all are missing or stale, nothing is known
        self.stored_columns = frozenset(
            c
            for columns in (
                *(read.columns for entity in self.entities for read in entity.views),
                *(w.columns for w in self.windows),
            )
            for c in columns
            if c in self.model_columns
        )
        # readiness: one HMGET of the views' markers (fsml.stores.redis)
        views = [v.encode() for v in self.views]
        self.marker_key = marker_key(project)
        self.marker_payload = pack(b"HMGET", self.marker_key, *views) if views else None
        # The request's time field is when the request happens: freshness is judged against it,
        # and it defaults to now.
        legacy = [i.name for i in card.inputs if i.kind == "request" and i.dtype == "timestamp"]
        self.time_field = time_field or card.time_field or (legacy[0] if legacy else None)

    @staticmethod
    def _odfv_names(card: ModelCard) -> list[str]:
        return list(dict.fromkeys(f.view for f in card.features if f.on_demand))

    @staticmethod
    def _on_demand(odfv: Any, card: ModelCard, needed: dict[str, list[str]], views: dict[str, Any]) -> OnDemand:
        inputs, types, keys = [], {}, []
        for projection in odfv.source_feature_view_projections.values():
            for feature in projection.features:
                inputs.append((projection.name, feature.name))
                kind = ARROW_TYPES.get(str(feature.dtype))
                types[feature.name] = types[f"{projection.name}__{feature.name}"] = kind
                names = needed.setdefault(projection.name, [])
                if feature.name not in names:
                    names.append(feature.name)
            for column in views[projection.name].entity_columns:
                keys.append(column.name)
                types[column.name] = ARROW_TYPES.get(str(column.dtype))
        request = []
        for source in odfv.source_request_sources.values():
            for f in source.schema:
                request.append(f.name)
                types[f.name] = ARROW_TYPES.get(str(f.dtype))
        outputs = tuple(f.name for f in card.features if f.view == odfv.name)
        mode = "pandas" if odfv.mode == "pandas" else "python"
        udf = odfv.feature_transformation.udf
        keys_ = tuple(dict.fromkeys(keys))
        return OnDemand(odfv.name, udf, mode, tuple(inputs), tuple(request), outputs, keys_, types)

    def _entities(self, views: dict[str, Any], needed: dict[str, list[str]]) -> tuple[EntityRead, ...]:
        groups: dict[tuple[str, ...], list[ViewRead]] = {}
        types: dict[tuple[str, ...], tuple[str, ...]] = {}
        for name, features in needed.items():
            view = views[name]
            keys = tuple(sorted(view.join_keys))
            ttl = view.ttl.total_seconds() if view.ttl else 0.0
            columns = tuple(f"{name}__{f}" for f in features)
            groups.setdefault(keys, []).append(ViewRead(name, tuple(features), ttl, columns))
            kinds = {c.name: c.dtype.to_value_type() for c in view.entity_columns}
            types[keys] = tuple(kinds[k] for k in keys)
        out = []
        for keys, reads in groups.items():
            fields: list[bytes] = []
            for read in reads:
                fields += [_mmh3(f"{read.name}:{f}") for f in read.features]
                fields.append(f"_ts:{read.name}".encode())
            prefix, order = key_prefix(keys)
            packed = b"".join(bulk_string(f) for f in fields)
            out.append(EntityRead(keys, types[keys], tuple(reads), tuple(fields), prefix, tuple(order), packed))
        return tuple(out)

    def all_missing(self, vector: FeatureVector) -> bool:
        """Every model feature read from the store is missing or stale."""
        return bool(self.stored_columns) and self.stored_columns <= vector.unavailable

    def redis_key(self, entity: EntityRead, row: Mapping[str, Any]) -> bytes:
        """Feast's key (v3 entity key serialization, then the project), built without protobuf."""
        values = b"".join(key_value(row[entity.join_keys[i]], entity.key_types[i]) for i in entity.order)
        return entity.prefix + values + self.project

    def commands(self, rows: Sequence[Mapping[str, Any]]) -> list[tuple[bytes, tuple[bytes, ...]]]:
        """The HMGETs for ``rows``, entity by entity, row by row."""
        return [(self.redis_key(e, row), e.fields) for row in rows for e in self.entities]

    def requests(
        self, rows: Sequence[Mapping[str, Any]], now: datetime | None = None
    ) -> tuple[list[bytes], list[bytes]]:
        """The HMGETs of ``commands(rows)`` in RESP (field arguments packed once per model), then
        per row the reads of its window views at the row's time; and each command's key, which a
        Redis Cluster client routes by."""
        parts, keys = [], []
        for row in rows:
            for e in self.entities:
                key = self.redis_key(e, row)
                keys.append(key)
                parts.append(
                    b"*%d\r\n$5\r\nHMGET\r\n$%d\r\n%s\r\n%s" % (len(e.fields) + 2, len(key), key, e.packed_fields)
                )
            if self.windows:
                t = micros(self._time(row, now))
                for w in self.windows:
                    commands, routes = w.keys.read(w.view.entity(row), t, self.max_events)
                    parts += commands
                    keys += routes
        return parts, keys

    def _time(self, row: Mapping[str, Any], now: datetime | None) -> datetime:
        at = row.get(self.time_field) if self.time_field else None
        return at if at is not None else (now or datetime.now(UTC))

    def assemble(
        self,
        rows: Sequence[Mapping[str, Any]],
        replies: Sequence[Sequence[bytes | None]],
        now: datetime,
    ) -> list[FeatureVector]:
        """Decode the replies of ``commands(rows)``, check freshness, add on-demand features."""
        vectors = []
        per_row, hashes = self.per_row, len(self.entities)
        for i, row in enumerate(rows):
            vector = FeatureVector()
            at = _or(row.get(self.time_field) if self.time_field else None, now)
            mine = replies[i * per_row : (i + 1) * per_row]
            for entity, reply in zip(self.entities, mine[:hashes], strict=True):
                self._fill(vector, entity, reply, at)
            for index, read in enumerate(self.windows):
                events, mark = mine[hashes + 2 * index], mine[hashes + 2 * index + 1]
                self._fill_window(vector, read, events, mark, micros(at))
            vectors.append(vector)
        self._apply_on_demand(rows, vectors, now)
        return vectors

    def _fill(self, vector: FeatureVector, entity: EntityRead, reply: Sequence[bytes | None], at: datetime) -> None:
        """A value is missing when the entity has no row for its view (or only a stale one);
        a present row may still hold a legitimate null, such as the max of an empty window."""
        values, model = vector.values, self.model_columns
        offset = 0
        for read in entity.views:
            n = len(read.columns)
            written = decode_timestamp(reply[offset + n])
            if written is not None:
                vector.ages[read.name] = age = at.timestamp() - written
                stale = 0 < read.ttl_seconds < age
            else:
                stale = False
            for column, raw in zip(read.columns, reply[offset : offset + n], strict=True):
                if raw is None or stale:
                    values[column] = None
                    vector.unavailable.add(column)
                    if column in model:
                        (vector.stale if raw is not None else vector.missing).append(column)
                else:
                    values[column] = decode_value(raw)
            offset += n + 1

    def _fill_window(
        self, vector: FeatureVector, read: WindowRead, members: list[bytes], mark: bytes | None, t: int
    ) -> None:
        events = read.view.unpack(members)
        if events:  # how old the newest event the windows hold is
            vector.ages[read.view.name] = (t - events[0][0]) / 1e6
        values, status = read.view.evaluate(events, t, int(mark) if mark else None)
        if values is not None:
            for feature, column in zip(read.features, read.columns, strict=True):
                vector.values[column] = values[feature]
            return
        for column in read.columns:
            vector.values[column] = None
            vector.unavailable.add(column)
            if column in self.model_columns:
                (vector.stale if status == "stale" else vector.missing).append(column)

    def _apply_on_demand(self, rows: Sequence[Mapping[str, Any]], vectors: list[FeatureVector], now: datetime) -> None:
        for odfv in self.on_demand:
            inputs: dict[str, list[Any]] = {}
            for view, feature in odfv.inputs:
                column = f"{view}__{feature}"
                inputs[feature] = inputs[column] = [v.values.get(column) for v in vectors]
            for name in odfv.request_fields:
                default = now if name == self.time_field else None
                inputs[name] = [_or(row.get(name), default) for row in rows]
            if odfv.mode == "pandas":
                for name in odfv.join_keys:
                    inputs.setdefault(name, [row.get(name) for row in rows])
            outputs = odfv.run(inputs, len(rows))
            sources = [f"{view}__{feature}" for view, feature in odfv.inputs]
            for feature in odfv.outputs:
                column = f"{odfv.name}__{feature}"
                values = outputs[feature]
                if len(values) != len(vectors):
                    raise OnDemandFailed(
                        odfv.name, ValueError(f"{len(values)} values of {feature} for {len(vectors)} rows")
                    )
                for vector, value in zip(vectors, values, strict=True):
                    value = None if value != value else value  # NaN (pandas' missing) is missing
                    vector.values[column] = value
                    if value is None and any(s in vector.unavailable for s in sources):
                        vector.missing.append(column)


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)


def micros(moment: datetime) -> int:
    """Epoch microseconds, exactly (a float timestamp can be off by one)."""
    return (moment - EPOCH) // MICROSECOND


def _or(value: Any, default: Any) -> Any:
    return default if value is None else value


def utc(value: datetime | None) -> datetime | None:
    """Requests may give naive or zoned times; features are compared in UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
