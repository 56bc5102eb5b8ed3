"""A full feature build as Ray tasks (``FSML_ENGINE=ray``): the same SQL, run on partitions.

A window view's change points depend only on each entity's own events, so its events are split
by a hash of the join keys, one task per part; a snapshot view's SQL gives the rows of the days
it is asked for (as incremental builds rely on), so its days are split into ranges, one task per
range. Each task opens its own DuckDB on the pushed files and reference tables (a path every
node sees) and returns its rows; the driver puts them in the order of a local build (join keys,
then event time, as the change-point SQL and the repo's snapshot SQL order them), then checks and
publishes as a local build does. Incremental builds stay local: they touch few entities.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime
from typing import Any

import pyarrow as pa
from fsml.features import snapshots
from fsml.features.sources import Repo, load_repo
from fsml.features.windows import WindowView, change_point_sql

from fsml.distributed import ordered_results, ray_cpus, ray_session
from fsml.featurestore import open_store
from fsml.settings import Settings
from fsml.tables import quote_name

log = logging.getLogger(__name__)

DAY_US = 86_400_000_000


def build_tables(
    settings: Settings,
    repo: Repo,
    windows: tuple[WindowView, ...],
    snapshot_views: tuple[Any, ...],
    files: dict[str, list[str]],
    days: tuple[int, int],
    created: datetime,
) -> dict[str, pa.Table]:
    """Every view's rows of a full build, computed by Ray tasks."""
    with ray_session(settings) as ray:
        parts = max(1, ray_cpus(ray))
    tasks: list[tuple[str, str, int, int]] = []
    for view in windows:
        tasks += [("window", view.name, i, parts) for i in range(parts)]
    first, last = days
    if first <= last:
        count = (last - first) // DAY_US + 1
        step = math.ceil(count / parts)
        for view in snapshot_views:
            for low in range(0, count, step):
                high = min(low + step, count) - 1
                tasks.append(("snapshot", view.name, first + low * DAY_US, first + high * DAY_US))
    log.info("feature build in %d Ray tasks (%d parts per view)", len(tasks), parts)
    shared = (settings, files, created)
    found: dict[str, list[pa.Table]] = {}
    results = ordered_results(settings, build_part, shared, tasks, None, "build part")
    for (_, name, _, _), table in zip(tasks, results, strict=True):
        found.setdefault(name, []).append(table)
    keys = {v.name: list(v.join_keys) for v in windows}
    keys |= {v.name: [c.name for c in v.entity_columns] for v in snapshot_views}
    return {name: _in_order(tables, keys[name]) for name, tables in found.items()}


def build_part(
    shared: tuple[Settings, dict[str, list[str]], datetime], kind: str, name: str, a: int, b: int
) -> pa.Table:
    """One task: part ``a`` of ``b`` of a window view's entities, or a snapshot view's days
    ``a`` to ``b`` (µs, included)."""
    from fsml.features.build import connect_sources, window_events

    settings, files, created = shared
    repo = load_repo(open_store(settings))
    con = connect_sources(repo, files)
    if kind == "window":
        view = repo.window(name)
        keys = ", ".join(quote_name(k) for k in view.join_keys)
        source = quote_name(view.source)
        query = f"SELECT * FROM {source} WHERE hash({keys}) % {b} = {a}"
        events = window_events(con, view, query)
        return con.sql(change_point_sql(view, events, "$created"), params={"created": created}).to_arrow_table()
    view = next(v for v in repo.feature_views if v.name == name)
    return snapshots.run(con, repo.repo_path, view, a, b, created)


def _in_order(tables: list[pa.Table], keys: list[str]) -> pa.Table:
    table = pa.concat_tables([t for t in tables if t.num_rows] or tables[:1])
    return table.sort_by([(k, "ascending") for k in [*keys, "event_timestamp"]])
