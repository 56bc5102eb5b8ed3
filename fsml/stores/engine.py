"""A Feast compute engine whose materialization writes Redis in column-sized steps.

Feast's local engine reads the range, keeps the newest row per entity, then converts each value
to a protobuf object and writes row by row (about 10,000 entity rows/s on two cores). Here the
same rows are selected by one DuckDB query (rows with ``start <= event time <= end``, the newest
per entity by event then created time, as Feast does), streamed in batches so memory stays
bounded, encoded a column at a time (``fsml.stores.encoding``) and written as Redis protocol
assembled with NumPy (``fsml.stores.ragged``): two round trips per batch, one reading the times
Redis holds, one writing. Like Feast's Redis store, a row older than (or as old as) what Redis
already holds for that entity is not written, unless ``skip_dedup`` is set. The keys and values
are byte for byte Feast's, so stock ``get_online_features`` reads them; a test compares whole
Redis contents.

Views this path does not cover (non-file sources, field mappings, other online stores, types
without a column encoder) are materialized by Feast's local engine unchanged.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any, Literal

import duckdb
import hiredis
import numpy as np
import pyarrow as pa
from feast.infra.common.materialization_job import MaterializationJobStatus, MaterializationTask
from feast.infra.compute_engines.local.compute import LocalComputeEngine, LocalComputeEngineConfig
from feast.infra.compute_engines.local.job import LocalMaterializationJob
from feast.infra.offline_stores.file_source import FileSource
from feast.infra.online_stores.helpers import _mmh3
from feast.infra.online_stores.redis import RedisOnlineStore, RedisType, _versioned_fv_name
from google.protobuf.timestamp_pb2 import Timestamp

from fsml.stores.encoding import SUPPORTED_KEYS, TAGS, key_column, timestamp_column, value_column
from fsml.stores.ragged import Ragged, command, concat
from fsml.stores.redis import mark_views
from fsml.stores.slots import key_slots, node_table
from fsml.tables import quote_name, scan

log = logging.getLogger(__name__)

BATCH_ROWS = 20_000


class FsmlComputeEngineConfig(LocalComputeEngineConfig):
    type: Literal["fsml.stores.engine.FsmlComputeEngine"] = "fsml.stores.engine.FsmlComputeEngine"  # type: ignore[assignment]


def _value_type(field: Any) -> Any:
    return field.dtype.to_value_type()


def covered(view: Any, online_store: Any, config: Any) -> bool:
    source = view.batch_source
    if not isinstance(online_store, RedisOnlineStore) or not isinstance(source, FileSource):
        return False
    if config.online_store.redis_type not in (RedisType.redis, RedisType.redis_cluster):  # sentinel: Feast's
        return False
    if source.field_mapping or "://" in str(source.path):
        return False
    if getattr(view, "aggregations", None):  # window views keep events online, not rows
        return False
    if any(_value_type(f) not in TAGS for f in view.features):
        return False
    return all(_value_type(c) in SUPPORTED_KEYS for c in view.entity_columns)


class FsmlComputeEngine(LocalComputeEngine):
    def _materialize_one(self, registry: Any, task: MaterializationTask, **kwargs: Any) -> LocalMaterializationJob:
        view = task.feature_view
        if (
            not covered(view, self.online_store, self.repo_config)
            or not task.only_latest
            or task.disable_event_timestamp
        ):
            return super()._materialize_one(registry, task, **kwargs)
        job_id = f"{view.name}-{task.start_time}-{task.end_time}"
        try:
            written = write_latest(self.repo_config, self.online_store, view, task.start_time, task.end_time)
            log.debug("materialized %d rows of %s", written, view.name)
            return LocalMaterializationJob(job_id=job_id, status=MaterializationJobStatus.SUCCEEDED)
        except Exception as exc:
            return LocalMaterializationJob(job_id=job_id, status=MaterializationJobStatus.ERROR, error=exc)


def latest_rows(view: Any, repo_path: str, start: Any, end: Any) -> duckdb.DuckDBPyRelation:
    source = view.batch_source
    path = FileSource.get_uri_for_file_path(repo_path, source.path)
    keys = [c.name for c in view.entity_columns]
    order = [f"{quote_name(source.timestamp_field)} DESC"]
    if source.created_timestamp_column:
        order.append(f"{quote_name(source.created_timestamp_column)} DESC")
    # Every Parquet time type (naive or zoned, ms, us or ns) as a UTC instant in microseconds,
    # the precision of Feast's Python datetimes; naive times are UTC, as in Feast.
    event = f"{quote_name(source.timestamp_field)}::TIMESTAMPTZ"
    columns = ", ".join(
        [
            *(quote_name(c) for c in [*keys, *(f.name for f in view.features)]),
            f"{event} AS {quote_name(source.timestamp_field)}",
        ]
    )
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    partition = ", ".join(quote_name(k) for k in keys)
    query = (
        f"SELECT {columns} FROM {scan(path)} WHERE {event} >= $start AND {event} <= $end "
        f"QUALIFY row_number() OVER (PARTITION BY {partition} ORDER BY {', '.join(order)}) = 1"
    )
    return con.sql(query, params={"start": start, "end": end})


def write_latest(config: Any, online_store: RedisOnlineStore, view: Any, start: Any, end: Any) -> int:
    client = online_store._get_client(config.online_store)
    reader = latest_rows(view, str(config.repo_path or ""), start, end).to_arrow_reader(BATCH_ROWS)
    name = _versioned_fv_name(view, config)
    fields = [_mmh3(f"{name}:{f.name}") for f in view.features]
    ts_field = f"_ts:{name}".encode()
    keys = [c.name for c in view.entity_columns]
    key_types = [_value_type(c) for c in view.entity_columns]
    store_config = config.online_store
    nodes = _Nodes(client)
    written = selected = 0
    try:
        for batch in reader:
            table = pa.Table.from_batches([batch])
            rows = table.num_rows
            selected += rows
            redis_keys = key_column(keys, key_types, [table[k].combine_chunks() for k in keys], config.project)
            stamps = table[view.batch_source.timestamp_field]
            groups = nodes.groups(redis_keys)
            if not store_config.skip_dedup:
                reads = command([b"HGET", redis_keys, ts_field], rows)
                for writer, mask in groups:
                    writer.send(_rows(reads, mask).tobytes(), 0)
            # encoded while Redis works on what was sent; rows it already holds newer are dropped below
            arguments: list[bytes | Ragged] = [b"HSET", redis_keys, ts_field, timestamp_column(stamps)]
            for field, feature in zip(fields, view.features, strict=True):
                arguments += [field, value_column(table[feature.name], _value_type(feature))]
            commands = [command(arguments, rows)]
            if store_config.key_ttl_seconds:
                commands.append(command([b"EXPIRE", redis_keys, str(store_config.key_ttl_seconds).encode()], rows))
            per_row = concat(commands) if len(commands) > 1 else commands[0]
            newer = np.ones(rows, dtype=bool)
            if not store_config.skip_dedup:
                nanos = _nanos_column(stamps)
                for writer, mask in groups:
                    held = writer.receive(rows if mask is None else int(mask.sum()))
                    newer[slice(None) if mask is None else mask] = _newer(held, nanos if mask is None else nanos[mask])
            for writer, mask in groups:
                keep = newer if mask is None else newer & mask
                chosen = per_row if keep.all() else per_row.keep(keep)
                writer.send(chosen.tobytes(), chosen.rows * len(commands))
                written += chosen.rows
        for writer in nodes.writers:
            writer.receive(0)
    except hiredis.ReplyError as exc:
        nodes.refresh()  # a moved slot or a failed-over node: the next run routes by the new map
        raise ConnectionError(f"Redis refused a write ({exc}); re-run to continue") from exc
    finally:
        nodes.close()
    if selected:  # the store now holds rows of this view up to ``end`` (see fsml.stores.redis)
        mark_views(client, config.project, {view.name: end})
    return written


def _rows(column: Ragged, mask: np.ndarray | None) -> Ragged:
    return column if mask is None else column.keep(mask)


class _Nodes:
    """One bulk writer per Redis node: the server itself, or each master of a Redis Cluster,
    whose rows are chosen by the slot of their key (``fsml.stores.slots``) in the slot map of
    Feast's own cluster client."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.cluster = hasattr(client, "nodes_manager")
        pools = [client.connection_pool] if not self.cluster else []
        if self.cluster:
            masters: dict[str, int] = {}
            ranges = []
            for slot, serving in client.nodes_manager.slots_cache.items():
                node = serving[0]
                index = masters.setdefault(node.name, len(masters))
                if index == len(pools):
                    pools.append(node.redis_connection.connection_pool)
                ranges.append((slot, slot, index))
            self.table = node_table(ranges)
        self.connections = [pool.make_connection() for pool in pools]  # AUTH and TLS as the client's
        for connection in self.connections:
            connection.connect()
        self.writers = [_BulkWriter(connection) for connection in self.connections]

    def groups(self, keys: Ragged) -> list[tuple[_BulkWriter, np.ndarray | None]]:
        """Each writer with the rows it takes (None: all of them)."""
        if not self.cluster:
            return [(self.writers[0], None)]
        nodes = self.table[key_slots(keys)]
        if (nodes < 0).any():
            raise ConnectionError("Redis Cluster has slots that no node serves (CLUSTERDOWN); re-run when it is whole")
        return [(writer, nodes == index) for index, writer in enumerate(self.writers) if (nodes == index).any()]

    def refresh(self) -> None:
        if self.cluster:
            self.client.nodes_manager.initialize()

    def close(self) -> None:
        for writer in self.writers:
            writer.close()
        for connection in self.connections:
            connection.disconnect()


class _BulkWriter:
    """Pipelined commands sent as raw protocol; a Redis error in any reply raises. Redis's guide
    to mass insertion does the same (``redis-cli --pipe``): redis-py would pack and parse each
    command in Python, most of the time at this volume.

    A thread sends (``sendall`` waits while Redis works through the commands), so the next batch
    is encoded meanwhile. Replies of writes (single-line integers or errors) are counted on the
    raw bytes before the replies of the next read, which hiredis parses.
    """

    def __init__(self, connection: Any) -> None:
        self.sock = connection._sock
        self.parser = hiredis.Reader()
        self.buffer = b""
        self.unread = 0  # replies of writes not read yet
        self.outbox: queue.Queue[bytes | None] = queue.Queue(maxsize=2)
        self.failure: BaseException | None = None
        self.thread = threading.Thread(target=self._send_loop, name="fsml-bulk-send", daemon=True)
        self.thread.start()

    def _send_loop(self) -> None:
        while (payload := self.outbox.get()) is not None:
            if self.failure is None:
                try:
                    self.sock.sendall(payload)
                except BaseException as exc:  # reported to the caller by receive()
                    self.failure = exc

    def send(self, payload: bytes, write_replies: int) -> None:
        self.outbox.put(payload)
        self.unread += write_replies

    def close(self) -> None:
        self.outbox.put(None)
        self.thread.join()

    def _recv(self) -> bytes:
        if self.failure is not None:
            raise self.failure
        data = self.sock.recv(1 << 20)
        if not data:
            raise ConnectionError("Redis closed the connection during a bulk write")
        return data

    def _skip_write_replies(self) -> None:
        while self.unread:
            if not self.buffer:
                self.buffer = self._recv()
            ends = np.flatnonzero(np.frombuffer(self.buffer, np.uint8) == 10)
            if not len(ends):
                self.buffer += self._recv()
                continue
            taken = min(self.unread, len(ends))
            lines, self.buffer = self.buffer[: ends[taken - 1] + 1], self.buffer[ends[taken - 1] + 1 :]
            if lines.startswith(b"-") or b"\n-" in lines:
                error = lines[lines.index(b"-") if lines.startswith(b"-") else lines.index(b"\n-") + 1 :]
                raise hiredis.ReplyError(error.split(b"\r\n", 1)[0][1:].decode(errors="replace"))
            self.unread -= taken

    def receive(self, replies: int) -> list[Any]:
        """Check the pending write replies, then return the next ``replies`` replies."""
        self._skip_write_replies()
        self.parser.feed(self.buffer)
        self.buffer = b""
        out: list[Any] = []
        while len(out) < replies:
            reply = self.parser.gets()
            if reply is False:
                self.parser.feed(self._recv())
            elif isinstance(reply, hiredis.ReplyError):
                raise reply
            else:
                out.append(reply)
        return out


def _nanos_column(stamps: pa.ChunkedArray) -> np.ndarray:
    return stamps.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64()).to_numpy() * 1000


def _newer(held: list[bytes | None], new: np.ndarray) -> np.ndarray:
    """Which rows are newer than the event time Redis holds, compared as Feast does: in
    nanoseconds, a missing (or zero) time being older than anything."""
    before = np.fromiter((_nanos(raw) if raw else 0 for raw in held), np.int64, len(held))
    return (before == 0) | (new > before)


def _nanos(raw: bytes) -> int:
    stamp = Timestamp.FromString(raw)
    return stamp.seconds * 1_000_000_000 + stamp.nanos
