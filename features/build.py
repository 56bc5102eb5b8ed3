"""Feature pipeline: pushed rows and reference tables to the Parquet tables behind the views.

Driven by the feature repo, not by this code: each window view (``fsml.features.windows``) gets
its change-point rows from its push source's events; each view tagged ``fsml.sql`` gets the
result of that SQL file (relative to the repo), run by DuckDB over every source of the repo by
name (push sources as their pushed rows, file sources as their files) with the parameters
``$start_us`` and ``$end_us`` (first and last snapshot instant, in epoch µs), ``$day``,
``$hour`` and ``$created``. Snapshots are daily, up to ``until`` but not past the day after the
newest pushed row (data that stopped coming is not a run of empty days).

Builds are incremental: the manifest of the published tables records which pushed files they
include. New files only recompute the change points of the entities they touch, from their
earliest new event on, and snapshots only for days not built yet; the result is appended as new
part files whose ``created_timestamp`` is later, so a point-in-time lookup prefers the new rows
(Feast's tie-break). Late rows make the snapshots from their time on be computed again (a snapshot
at instant ``tau`` may read rows whose event time is at most ``tau``), so an incremental build
gives the rows a full build would. Anything else that changed (declarations, SQL, this code, a
reference table, a removed file)
means a full build; ``full=True`` forces one, which also compacts the parts.

Every new pushed row and every new table row is validated before anything is published, and all
tables are published together (``fsml.atomic.staged_dir``), so a rejected build leaves the
previous tables as they were.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from fsml.features import snapshots
from fsml.features.eventlog import EventLog
from fsml.features.sources import Repo, load_repo
from fsml.features.validation import push_spec, validate, view_spec
from fsml.features.windows import WindowView, change_point_sql

from fsml.atomic import staged_dir
from fsml.errors import FsmlError, ValidationFailed
from fsml.featurestore import open_store
from fsml.fingerprint import file_digest
from fsml.settings import Settings
from fsml.tables import quote_name, scan_files, table_dir

log = logging.getLogger(__name__)

DAY_US = 86_400_000_000
MANIFEST = "manifest.json"
Progress = Callable[[str], None]


class NothingToBuild(FsmlError):
    """The repo declares no view whose table the pipeline writes."""


@dataclass
class BuildResult:
    directory: Path
    mode: str  # "full", "incremental" or "unchanged"
    until: datetime
    tables: dict[str, int] = field(default_factory=dict)  # rows written per table by this build
    new_rows: dict[str, int] = field(default_factory=dict)  # pushed rows read for the first time

    def summary(self) -> dict[str, Any]:
        return {"directory": str(self.directory), "mode": self.mode, "until": self.until.isoformat(),
                "rows_written": self.tables, "new_pushed_rows": self.new_rows}  # fmt: skip


def build_features(
    settings: Settings,
    until: datetime | None = None,
    full: bool = False,
    progress: Progress | None = None,
) -> BuildResult:
    """Bring the offline tables up to date with the pushed rows and ``until`` (default now)."""
    note = progress or (lambda _: None)
    until = (until or datetime.now(UTC)).astimezone(UTC)
    repo = load_repo(open_store(settings))
    plan = Plan.of(repo)
    files = {name: [str(f.relative_to(s.path)) for f in EventLog(s.path).files()] for name, s in repo.sources.items()}
    previous = _manifest(plan.directory)
    fingerprint = plan.fingerprint()
    old = previous.get("files", {}) if previous else {}
    incremental = (
        not full
        and previous is not None
        and previous.get("fingerprint") == fingerprint
        and all(set(old.get(n, [])) <= set(f) for n, f in files.items())
    )
    new = {n: [f for f in fs if f not in set(old.get(n, []))] if incremental else fs for n, fs in files.items()}
    last_day = _day_floor(_micros(until))
    if (
        incremental
        and not any(new.values())
        and previous.get("last_snapshot", 0) >= min(last_day, _day_ceil(previous.get("newest", 0)))
    ):
        return BuildResult(plan.directory, "unchanged", until)
    located = {n: [str(repo.sources[n].path / f) for f in fs] for n, fs in files.items()}
    fresh = {n: [str(repo.sources[n].path / f) for f in fs] for n, fs in new.items()}
    if not incremental and not any(files.values()):
        raise FsmlError("nothing has been pushed yet: push rows (`fsml push`) before building features")
    con = _connect()
    created = _created(previous)
    note("validating pushed rows")
    rows, earliest = _register_sources(con, repo, located, fresh)
    first, newest = _first_day(con, repo), _newest(con, repo)
    last_day = min(last_day, _day_ceil(newest))  # no snapshots past the data: a feed that stopped is not "zero"
    if incremental:  # new days, and the days late rows change (a snapshot reads rows up to its instant)
        first = min([previous.get("last_snapshot", 0) + DAY_US, *(_day_ceil(t) for t in earliest)])
    tables: dict[str, pa.Table] = {}
    if settings.engine == "ray" and not incremental:
        from fsml.features.partitioned import build_tables

        note("computing the views as Ray tasks")
        tables = build_tables(settings, repo, plan.windows, plan.snapshots, located, (first, last_day), created)
    else:
        build = Build(con, repo, plan, created, incremental, previous or {})
        for view in plan.windows:
            if new[view.source] or not incremental:
                note(f"computing {view.name}")
                tables[view.name] = build.windows(view, fresh[view.source])
        for view in plan.snapshots:
            if first <= last_day:
                note(f"computing {view.name}")
                tables[view.name] = snapshots.run(con, repo.repo_path, view, first, last_day, created)
    failures = [f for name, table in tables.items() for f in _check(con, plan.view(name), table, incremental)]
    if failures:
        raise ValidationFailed("feature batch", failures)
    note("publishing feature tables")
    manifest = {
        "fingerprint": fingerprint,
        "files": files,
        "created": created.isoformat(),
        "until": until.isoformat(),
        "last_snapshot": max(last_day, previous.get("last_snapshot", 0) if incremental else 0),
        "newest": newest,
    }
    _publish(plan, tables, manifest, created, keep_old=incremental)
    mode = "incremental" if incremental else "full"
    return BuildResult(plan.directory, mode, until, {k: v.num_rows for k, v in tables.items()}, rows)


@dataclass(frozen=True)
class Plan:
    """The views the pipeline writes and where."""

    windows: tuple[WindowView, ...]
    snapshots: tuple[Any, ...]  # Feast views with an fsml.sql tag
    views: dict[str, Any]  # every produced view's Feast object
    directory: Path  # their common parent, published as a whole
    repo: Repo

    @classmethod
    def of(cls, repo: Repo) -> Plan:
        if not repo.feature_views and not repo.stream_views:
            raise FsmlError(f"no feature views registered in project {repo.project}: run `fsml features apply`")
        by_name = {v.name: v for v in (*repo.feature_views, *repo.stream_views)}
        snaps = tuple(v for v in repo.feature_views if "fsml.sql" in v.tags)
        produced = {**{w.name: by_name[w.name] for w in repo.windows}, **{v.name: v for v in snaps}}
        if not produced:
            raise NothingToBuild("the feature repo declares no window views and no views tagged 'fsml.sql'")
        paths = {name: table_dir(repo.path(v.batch_source.path)) for name, v in produced.items()}
        parents = {p.parent for p in paths.values()}
        if len(parents) != 1 or any(p.name != name for name, p in paths.items()):
            shown = ", ".join(f"{n}: {p}" for n, p in paths.items())
            raise FsmlError(f"built views must live in one directory, each in a folder named after it ({shown})")
        return cls(repo.windows, snaps, produced, parents.pop(), repo)

    def view(self, name: str) -> Any:
        return self.views[name]

    def fingerprint(self) -> str:
        """What the tables depend on besides the pushed rows: declarations, SQL, code and the
        reference tables."""
        digest = hashlib.sha256()
        for w in self.windows:
            digest.update(repr((w.name, w.source, w.join_keys, w.timestamp, w.aggregates, w.columns,
                                w.ttl_micros)).encode())  # fmt: skip
            digest.update((getattr(self.views[w.name], "udf_string", "") or "").encode())
        for v in self.snapshots:
            digest.update(repr((v.name, sorted(v.tags.items()), [(f.name, str(f.dtype)) for f in v.features])).encode())
            digest.update(snapshots.sql_of(self.repo.repo_path, v).encode())
        for name in sorted(self.repo.sources):
            digest.update(repr(self.repo.sources[name].columns).encode())
        for source in snapshots.reference_sources(self.repo):
            path = self.repo.path(source.path)
            if path.is_file():
                file_digest(path, digest)
        here = Path(__file__).parent
        for module in ("build.py", "windows.py", "snapshots.py", "validation.py"):
            digest.update((here / module).read_bytes())
        return digest.hexdigest()


@dataclass
class Build:
    con: duckdb.DuckDBPyConnection
    repo: Repo
    plan: Plan
    created: datetime
    incremental: bool
    previous: dict[str, Any]

    def windows(self, view: WindowView, new_files: list[str]) -> pa.Table:
        """Change-point rows: all of them, or those after each touched entity's first new event."""
        keys = ", ".join(quote_name(k) for k in view.join_keys)
        ts = quote_name(view.timestamp)
        source = self.repo.sources[view.source]
        if not self.incremental:
            events = window_events(self.con, view, f"SELECT * FROM {quote_name(source.name)}")
            return self.con.sql(
                change_point_sql(view, events, "$created"), params={"created": self.created}
            ).to_arrow_table()
        self.con.execute(
            f"CREATE OR REPLACE TEMP TABLE touched AS SELECT {keys}, min(epoch_us({ts})) AS __since "
            f"FROM {scan_files(new_files)} GROUP BY {keys}"
        )
        reach = view.longest + 1
        relevant = (
            f"SELECT e.* FROM {quote_name(source.name)} e JOIN touched USING ({keys}) "
            f"WHERE epoch_us(e.{ts}) >= touched.__since - {reach}"
        )
        events = window_events(self.con, view, relevant)
        points = change_point_sql(view, events, "$created")
        query = (
            f"SELECT cp.* FROM ({points}) cp JOIN touched USING ({keys}) "
            f"WHERE epoch_us(cp.event_timestamp) > touched.__since ORDER BY {keys}, event_timestamp"
        )
        return self.con.sql(query, params={"created": self.created}).to_arrow_table()


def window_events(con: duckdb.DuckDBPyConnection, view: WindowView, query: str) -> str:
    """Register the events a window view aggregates (join keys, ``__ts`` in µs, inputs, with
    the view's udf applied) and return the relation's name."""
    table = con.sql(query).to_arrow_table()
    columns = view.event_columns(table.to_pydict()) if view.derive else {n: table[n] for n in table.column_names}
    times = table[view.timestamp].cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())
    data = {k: columns[k] for k in view.join_keys} | {"__ts": times} | {c: columns[c] for c in view.columns}
    name = f"events_{view.name}"
    con.register(name, pa.table(data))
    return name


def _register_sources(
    con: duckdb.DuckDBPyConnection, repo: Repo, files: dict[str, list[str]], new: dict[str, list[str]]
) -> tuple[dict[str, int], list[int]]:
    """Each push source as a view of its rows (checked: the new ones in an incremental build),
    each reference file source by name. Returns the new rows per source and the earliest event
    time (µs) of each source's new rows."""
    failures, counts, earliest = [], {}, []
    for name, schema in repo.sources.items():
        _source_view(con, name, schema, files[name])
        if new[name]:
            con.execute(f"CREATE OR REPLACE TEMP VIEW fresh AS SELECT * FROM {scan_files(new[name])}")
            spec = push_spec(schema)
            old = [f for f in files[name] if f not in set(new[name])]
            if old:  # ids must stay unique across files too
                key = quote_name(schema.id)
                spec = replace(spec, rules=(("duplicate_keys", f"{key} NOT IN (SELECT {key} FROM {scan_files(old)})"),))
            failures += validate(con, "fresh", spec)
            ts = quote_name(schema.timestamp)
            counts[name], first = con.execute(f"SELECT count(*), min(epoch_us({ts})) FROM fresh").fetchall()[0]
            earliest += [first] if first is not None else []
    if failures:
        raise ValidationFailed("pushed rows", failures)
    snapshots.register_references(con, repo)
    return counts, earliest


def _source_view(con: duckdb.DuckDBPyConnection, name: str, schema: Any, files: list[str]) -> None:
    if files:
        con.execute(f"CREATE VIEW {quote_name(name)} AS SELECT * FROM {scan_files(files)}")
    else:
        columns = ", ".join(f"NULL::{_SQL[c.dtype]} AS {quote_name(c.name)}" for c in schema.columns)
        con.execute(f"CREATE VIEW {quote_name(name)} AS SELECT {columns} WHERE false")


def connect_sources(repo: Repo, files: dict[str, list[str]]) -> duckdb.DuckDBPyConnection:
    """A connection with every source as a view by its name, as a build has them (the rows were
    checked by the build that hands them out): for a task of a distributed build."""
    con = _connect()
    for name, schema in repo.sources.items():
        _source_view(con, name, schema, files[name])
    snapshots.register_references(con, repo)
    return con


_SQL = {"int": "BIGINT", "float": "DOUBLE", "string": "VARCHAR", "timestamp": "TIMESTAMPTZ"}


def _check(con: duckdb.DuckDBPyConnection, view: Any, table: pa.Table, incremental: bool) -> list[str]:
    name = f"out_{view.name}"
    con.register(name, table)
    return validate(con, name, view_spec(view, min_rows=0 if incremental else 1))


def _publish(plan: Plan, tables: dict[str, pa.Table], manifest: dict, created: datetime, keep_old: bool) -> None:
    import pyarrow.parquet as pq

    part = f"part-{created:%Y%m%dT%H%M%S%f}.parquet"
    old = plan.directory.resolve() if plan.directory.exists() else None
    with staged_dir(plan.directory) as stage:
        for name in plan.views:
            (stage / name).mkdir()
            if keep_old and old is not None and (old / name).is_dir():
                for existing in (old / name).glob("*.parquet"):
                    os.link(existing, stage / name / existing.name)
            if name in tables and tables[name].num_rows:
                pq.write_table(tables[name], stage / name / part, compression="zstd")
        (stage / MANIFEST).write_text(json.dumps(manifest, sort_keys=True))


def _manifest(directory: Path) -> dict[str, Any] | None:
    try:
        return json.loads((directory / MANIFEST).read_text())
    except (FileNotFoundError, ValueError):
        return None


def _created(previous: dict[str, Any] | None) -> datetime:
    """This build's ``created_timestamp``: later than every earlier build's, so its rows win."""
    now = datetime.now(UTC).replace(microsecond=0)
    if previous and previous.get("created"):
        return max(now, datetime.fromisoformat(previous["created"]) + timedelta(seconds=1))
    return now


def _first_day(con: duckdb.DuckDBPyConnection, repo: Repo) -> int:
    firsts = [
        con.execute(f"SELECT min(epoch_us({quote_name(s.timestamp)})) FROM {quote_name(n)}").fetchall()[0][0]
        for n, s in repo.sources.items()
    ]
    known = [f for f in firsts if f is not None]
    return _day_floor(min(known)) if known else 2**62


def _newest(con: duckdb.DuckDBPyConnection, repo: Repo) -> int:
    lasts = [
        con.execute(f"SELECT max(epoch_us({quote_name(s.timestamp)})) FROM {quote_name(n)}").fetchall()[0][0]
        for n, s in repo.sources.items()
    ]
    return max((t for t in lasts if t is not None), default=0)


def _connect() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    return con


def _micros(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def _day_floor(micros: int) -> int:
    return micros - micros % DAY_US


def _day_ceil(micros: int) -> int:
    return _day_floor(micros + DAY_US - 1)
