"""Pushed rows into both stores, durably and once: the code behind ``POST /v1/push/{source}``,
``fsml push`` and ``record: true`` on predictions.

For one request, in order:

1. check every row (``fsml.features.rows``): a bad row refuses the whole request;
2. drop ids already known (the source's dedupe hash in Redis, or earlier in the request); if
   Redis cannot be reached here, the request fails with nothing written;
3. write the new rows to a pending file, fsynced (``fsml.features.eventlog``);
4. Redis scripts of at most ``Policy.apply_rows`` rows each (pipelined) claim each id and add
   its events to the window views it feeds; ids another request claimed in the meantime are
   duplicates;
5. publish the file into its date partitions, without those duplicates;
6. answer ``accepted`` and ``duplicates``.

A failure in step 4 cannot tell which of the scripts Redis ran, so the pending file is kept and
finished (steps 4 and 5 again, which are idempotent) before this process's next push, by the
server's background task, or by the next process to start. Deleting it instead could lose a row
whose id Redis already holds: a retry would then be answered as a duplicate of a row kept
nowhere offline. Redis must persist what it acknowledges (``appendfsync always``) for an
acknowledged row to survive a Redis crash.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
from fsml.features.eventlog import EventLog, read_pending
from fsml.features.rows import check_rows
from fsml.features.sources import PushSchema, Repo
from fsml.features.window_store import ADD, APPLY, CLAIM, WindowKeys, apply_arguments, seen_key, tagged

from fsml.stores.ragged import Ragged, command_with_rows, pack

log = logging.getLogger(__name__)

ONLINE = b"fsml.online"
ADD_SCRIPT = ADD.encode()


class Transport(Protocol):
    """The serving Redis client: one server's, or a Redis Cluster's (``cluster``), which sends
    each command to the node serving its key."""

    cluster: bool

    async def execute(self, commands: list[bytes], keys: list[bytes]) -> list[Any]: ...


@dataclass(frozen=True)
class Policy:
    max_future: timedelta = timedelta(hours=1)  # clock skew allowed ahead of now
    lateness: timedelta = timedelta(days=1)  # how late an event may arrive and still count online
    max_events: int = 10_000  # events kept online per entity and window view
    apply_rows: int = 50  # rows per Redis script: how long Redis answers no one else


@dataclass(frozen=True)
class PushResult:
    source: str
    accepted: int
    duplicates: int
    newest: int | None = None  # newest event time accepted, epoch µs

    def answer(self) -> dict[str, int]:
        return {"accepted": self.accepted, "duplicates": self.duplicates}


@dataclass
class Ingestor:
    repo: Repo
    redis: Transport
    policy: Policy = field(default_factory=Policy)
    unresolved: list[tuple[str, Path]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.logs = {name: EventLog(schema.path) for name, schema in self.repo.sources.items()}

    async def push(
        self, source: str, rows: Sequence[Any], online: bool = True, now: datetime | None = None
    ) -> PushResult:
        schema = self.repo.source(source)
        await self.resolve()
        checked = check_rows(schema, rows, now or datetime.now(UTC), self.policy.max_future)
        ids = [str(i).encode() for i in checked.ids]
        first: dict[bytes, int] = {}
        for index, row_id in enumerate(ids):
            first.setdefault(row_id, index)
        seen = seen_key(self.repo.project, source)
        lookup = command_with_rows([b"HMGET", seen], [Ragged.from_list(list(first))])
        known = await self.redis.execute([lookup], [seen])
        fresh = [index for index, held in zip(first.values(), known[0], strict=True) if held is None]
        if not fresh:
            return PushResult(source, 0, len(rows))
        table = checked.table if len(fresh) == len(rows) else checked.table.take(fresh)
        table = table.replace_schema_metadata({ONLINE: b"1" if online else b"0"})
        pending = await asyncio.to_thread(self.logs[source].write_pending, table)
        try:
            kept = await self._apply(schema, pending, table)
        except Exception:
            self.unresolved.append((source, pending))
            raise
        whole = kept.num_rows == table.num_rows
        await asyncio.to_thread(self.logs[source].publish, pending, kept, schema.timestamp, whole)
        newest = max(checked.times[i] for i in fresh)
        return PushResult(source, kept.num_rows, len(rows) - kept.num_rows, newest)

    async def _apply(self, schema: PushSchema, pending: Path, table: pa.Table) -> pa.Table:
        """Claim the rows and add their events, ``Policy.apply_rows`` rows per script; the rows
        that were new (or already applied from this same file), without those another request
        holds. The scripts' arguments are assembled a column at a time (``fsml.stores.ragged``).
        On a Redis Cluster, claims and events go apart (``_apply_on_cluster``)."""
        online = (table.schema.metadata or {}).get(ONLINE, b"1") == b"1"
        views = schema.windows if online else ()
        ids = Ragged.from_list([str(i).encode() for i in table[schema.id].to_pylist()])
        events = []  # per view: entities (tagged), scores, members
        if views:
            times = table[schema.timestamp].cast(pa.int64()).to_numpy()
            scores = Ragged.from_list([b"%d" % t for t in times.tolist()])
            plain = table.to_pydict() if any(v.derive for v in views) else {}
            for view in views:
                derived = view.event_columns(plain) if view.derive else {}
                inputs = {c: derived[c] if c in derived else table[c] for c in view.columns}
                entities = Ragged.from_list([tagged(e) for e in view.entities(table).to_list()])
                events.append([entities, scores, view.members(times, inputs, ids)])
        lateness = self.policy.lateness // timedelta(microseconds=1)
        cap = self.policy.max_events
        retention = [(WindowKeys(self.repo.project, v.name), v.longest + lateness, cap) for v in views]
        token = EventLog.token(pending).encode()
        seen = seen_key(self.repo.project, schema.name)
        if getattr(self.redis, "cluster", False):
            statuses = await self._apply_on_cluster(seen, token, ids, retention, events)
        else:
            head = [b"EVAL", APPLY.encode(), b"0", *apply_arguments(seen, token, bool(views), retention, [], [])]
            columns = [ids, *(c for columns in events for c in columns)]
            # Bounded scripts, pipelined: Redis runs a script without answering anyone else, so one
            # for 500 rows held predictions ~7.5 ms; ~50 rows take under 1 ms, and Redis reads the
            # pipeline 16 KB at a time, serving other clients in between. A push applied in part
            # (the process or Redis died between scripts) is finished from its pending file.
            statuses = await self._bounded(head, columns, table.num_rows, seen)
        if all(statuses):
            return table
        return table.filter(pa.array([s != 0 for s in statuses]))

    async def _bounded(self, head: list[bytes], columns: list[Ragged], rows: int, seen: bytes) -> list[int]:
        """``head`` run over ``columns`` in scripts of at most ``Policy.apply_rows`` rows, pipelined
        (all on the dedupe hash's slot); one status per row."""
        step = self.policy.apply_rows
        payloads = [command_with_rows(head, [c.slice(i, i + step) for c in columns]) for i in range(0, rows, step)]
        replies = await self.redis.execute(payloads, [seen] * len(payloads))
        return [status for reply in replies for status in reply]

    async def _apply_on_cluster(
        self,
        seen: bytes,
        token: bytes,
        ids: Ragged,
        retention: list[tuple[WindowKeys, int, int]],
        events: list[list[Ragged]],
    ) -> list[int]:
        """Claims on the dedupe hash's node, then the claimed rows' events, one ``ADD`` per view
        and entity on its own slot, all nodes' pipelines at once (``fsml.features.window_store``
        says why a crash between the two is repaired by re-applying the file)."""
        statuses = await self._bounded([b"EVAL", CLAIM.encode(), b"1", seen, token], [ids], ids.rows, seen)
        commands, keys = [], []
        for (names, keep, cap), (entities, scores, members) in zip(retention, events, strict=True):
            grouped: dict[bytes, list[bytes]] = {}
            for status, entity, score, member in zip(
                statuses, entities.to_list(), scores.to_list(), members.to_list(), strict=True
            ):
                if status:
                    grouped.setdefault(entity, []).extend((score, member))
            for entity, pairs in grouped.items():
                events_key, mark = names.prefix + entity, names.mark_prefix + entity
                limits = [b"%d" % keep, b"%d" % cap, b""]  # no watermark known: trimming sets it
                commands.append(pack(b"EVAL", ADD_SCRIPT, b"2", events_key, mark, *limits, *pairs))
                keys.append(events_key)
        if commands:
            await self.redis.execute(commands, keys)
        return statuses

    async def resolve(self) -> int:
        """Finish this process's pending files left by a failed step, oldest first."""
        done = 0
        while self.unresolved:
            source, pending = self.unresolved[0]
            await self._finish(source, pending)
            self.unresolved.pop(0)
            done += 1
        return done

    async def recover(self) -> int:
        """Finish the pending files of processes that died (at start-up), then our own."""
        done = 0
        for source, events in self.logs.items():
            for pending in await asyncio.to_thread(events.orphans):
                await self._finish(source, pending)
                events.forget_owner(pending.name.split(".", 1)[0])
                done += 1
        return done + await self.resolve()

    async def _finish(self, source: str, pending: Path) -> None:
        if not pending.exists():  # published before the failure was seen
            return
        schema = self.repo.source(source)
        try:
            table = await asyncio.to_thread(read_pending, pending)
        except (pa.ArrowException, OSError) as exc:  # torn: its process died writing it, unanswered
            log.warning("dropping unreadable pending push %s: %s", pending.name, exc)
            pending.unlink(missing_ok=True)
            return
        kept = await self._apply(schema, pending, table)
        whole = kept.num_rows == table.num_rows
        await asyncio.to_thread(self.logs[source].publish, pending, kept, schema.timestamp, whole)
        log.info("recovered %d row(s) of %s from %s", kept.num_rows, source, pending.name)
