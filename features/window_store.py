"""Where window views keep their recent events in Redis, and the scripts that change them.

Per view and entity, one sorted set: members are packed events (``WindowView.pack``), scores
their times in epoch µs (exact as doubles until the year 2255). A request reads the events before
its time with one ``ZREVRANGEBYSCORE``; the aggregation happens in the reader.

Events are kept while they can matter: within the longest window plus the allowed lateness of the
entity's newest event, and the newest event older than that (it decides whether the windows have
expired, as the offline TTL does). Older events are removed by the same script that adds events,
so no job runs in the background. When events are removed, a watermark records from which time
the set is complete; a request reaching further back is answered ``incomplete`` instead of a
wrong value. The number of events per entity is bounded too (``FSML_WINDOW_MAX_EVENTS``): beyond
it the oldest go and the watermark moves up.

Pushes are applied by Lua scripts of a bounded number of rows (``APPLY``; ``fsml.features.ingest``
splits a request so that no script holds Redis for more than about a millisecond): for every
row, claim its id in the source's dedupe hash (``HSETNX id token``) and, only if the claim is
new, add its events. A row's claim and its events commit together (Redis runs a script
atomically and, with ``appendfsync always``, fsyncs it before answering), so a row is online
exactly once. The token names the write-ahead file the row came from: re-applying that file after
a crash (also one between two of its scripts) finds its own claims and reports them as applied,
not as duplicates.

On a Redis Cluster (``FSML_REDIS_TYPE=redis_cluster``) no script may touch keys of several
slots, so a push is applied in two steps instead: ``CLAIM`` on the dedupe hash alone, then, for the
rows claimed (new, or applied before by the same file), ``ADD`` per view and entity on the
entity's own keys, grouped by node and pipelined. Each entity's events and watermark share a
hash tag (``tagged``), so ``ADD`` is one atomic script on one slot. Adding an event is
idempotent (a member is the packed event with its row id), so a crash between the two steps is
repaired by re-applying the write-ahead file, as on one server: the claims come back as this
file's own and the events are added again, which changes nothing already there.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
from fsml.features.windows import WindowView

from fsml.stores.ragged import pack
from fsml.tables import quote_name, scan_files

# Trim one sorted set: keep events newer than (newest - retention) plus the newest one before
# that; cap the count; raise the watermark (a string key in the same slot) when anything went.
_TRIM = """
local function trim(key, mark, retention, cap)
  local top = redis.call('ZREVRANGE', key, 0, 0, 'WITHSCORES')
  if not top[2] then return end
  local cutoff = string.format('(%.0f', tonumber(top[2]) - retention)
  local anchor = redis.call('ZREVRANGEBYSCORE', key, cutoff, '-inf', 'WITHSCORES', 'LIMIT', 0, 1)
  local floor = nil
  if anchor[2] then
    local below = string.format('(%.0f', tonumber(anchor[2]))
    if redis.call('ZCOUNT', key, '-inf', below) > 0 then
      redis.call('ZREMRANGEBYSCORE', key, '-inf', below)
      floor = tonumber(anchor[2])
    end
  end
  local n = redis.call('ZCARD', key)
  if n > cap then
    local keep = redis.call('ZRANGE', key, n - cap, n - cap, 'WITHSCORES')
    local least = tonumber(keep[2])
    redis.call('ZREMRANGEBYSCORE', key, '-inf', string.format('(%.0f', least))
    floor = least
  end
  if floor then
    local old = tonumber(redis.call('GET', mark) or '-1')
    if floor > old then redis.call('SET', mark, string.format('%.0f', floor)) end
  end
end
"""

# KEYS: none (built from ARGV: one server only). ARGV: seen hash, token, online flag, number of
# views, then per view (events prefix, watermark prefix, retention µs, cap), then per row: id,
# then per view (tagged entity, score, member). Returns per row 1 (new), 2 (applied before by
# this token), 0 (duplicate).
APPLY = (
    _TRIM
    + """
local seen, token, online, views = ARGV[1], ARGV[2], ARGV[3] == '1', tonumber(ARGV[4])
local spec, at = {}, 5
for v = 1, views do
  spec[v] = {ARGV[at], ARGV[at + 1], tonumber(ARGV[at + 2]), tonumber(ARGV[at + 3])}
  at = at + 4
end
local width = online and (1 + 3 * views) or 1
local out, touched = {}, {}
local row = 1
while at <= #ARGV do
  local id = ARGV[at]
  local status = 0
  if redis.call('HSETNX', seen, id, token) == 1 then
    status = 1
    if online then
      for v = 1, views do
        local base = at + 1 + 3 * (v - 1)
        local key = spec[v][1] .. ARGV[base]
        redis.call('ZADD', key, ARGV[base + 1], ARGV[base + 2])
        touched[key] = {v, spec[v][2] .. ARGV[base]}
      end
    end
  elseif redis.call('HGET', seen, id) == token then
    status = 2
  end
  out[row] = status
  row = row + 1
  at = at + width
end
for key, where in pairs(touched) do
  local s = spec[where[1]]
  trim(key, where[2], s[3], s[4])
end
return out
"""
)

# Claims alone (a cluster's first step). KEYS: the seen hash. ARGV: token, then ids. Returns
# per id 1 (new), 2 (claimed before by this token), 0 (duplicate), as APPLY does.
CLAIM = """
local out = {}
for i = 2, #ARGV do
  if redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[1]) == 1 then
    out[i - 1] = 1
  elseif redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[1] then
    out[i - 1] = 2
  else
    out[i - 1] = 0
  end
end
return out
"""

# Events of one entity (a cluster's second step, and loading from the offline log). KEYS: its
# events, its watermark. ARGV: retention, cap, watermark ('' when none is known), then pairs of
# (score, member). Existing members stay: adding merges.
ADD = (
    _TRIM
    + """
local retention, cap, floor = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
for i = 4, #ARGV, 2 do
  redis.call('ZADD', KEYS[1], ARGV[i], ARGV[i + 1])
end
if floor ~= '' then
  local old = tonumber(redis.call('GET', KEYS[2]) or '-1')
  if tonumber(floor) > old then redis.call('SET', KEYS[2], floor) end
end
trim(KEYS[1], KEYS[2], retention, cap)
return 1
"""
)


def tagged(entity: bytes) -> bytes:
    """An entity's part of its window keys: a hash tag of the entity, then the entity, so that its
    events and its watermark are in one Redis Cluster slot (one script may change both)."""
    return b"{%08x}" % zlib.crc32(entity) + entity


@dataclass(frozen=True)
class WindowKeys:
    """The Redis names of one window view in one Feast project."""

    project: str
    view: str

    @property
    def prefix(self) -> bytes:
        return f"fsml:{self.project}:window:{self.view}:".encode()

    @property
    def mark_prefix(self) -> bytes:
        return f"fsml:{self.project}:window-complete:{self.view}:".encode()

    def keys(self, entity: bytes) -> tuple[bytes, bytes]:
        """The entity's events and watermark (the time from which its events are complete)."""
        tag = tagged(entity)
        return self.prefix + tag, self.mark_prefix + tag

    def read(self, entity: bytes, t: int, limit: int) -> tuple[list[bytes], tuple[bytes, bytes]]:
        """The two commands of one request, events before ``t``, newest first, and the
        watermark; and their keys."""
        events, mark = self.keys(entity)
        commands = [pack(b"ZREVRANGEBYSCORE", events, b"(%d" % t, b"-inf", b"LIMIT", b"0", b"%d" % limit)]
        return [*commands, pack(b"GET", mark)], (events, mark)


def seen_key(project: str, source: str) -> bytes:
    """The dedupe hash of a push source: row id -> token of the file that brought it."""
    return f"fsml:{project}:push:{source}:seen".encode()


def apply_arguments(
    seen: bytes,
    token: bytes,
    online: bool,
    views: Sequence[tuple[WindowKeys, int, int]],  # (keys, retention µs, cap)
    ids: Sequence[bytes],
    events: Sequence[Sequence[tuple[bytes, int, bytes]]],  # per view, per row: (tagged entity, score, member)
) -> list[bytes]:
    """The ``APPLY`` script's arguments for a batch of rows."""
    args = [seen, token, b"1" if online else b"0", b"%d" % len(views)]
    for keys, retention, cap in views:
        args += [keys.prefix, keys.mark_prefix, b"%d" % retention, b"%d" % cap]
    for i, row_id in enumerate(ids):
        args.append(row_id)
        if online:
            for per_view in events:
                entity, score, member = per_view[i]
                args += [entity, b"%d" % score, member]
    return args


def load_from_log(
    client: Any,
    project: str,
    view: WindowView,
    files: list[str],
    end: int,
    retention: int,
    cap: int,
    batch: int = 500,
) -> int:
    """Load each entity's events before ``end`` (µs) from the offline log, as pushes would have
    left them: those within ``retention`` of its newest event, plus the newest one before that.
    Returns the number of entities loaded. ``client`` is a redis-py client (or cluster client)."""
    if not files:
        return 0
    keys = ", ".join(quote_name(k) for k in view.join_keys)
    ts = quote_name(view.timestamp)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    table = con.sql(
        f"""WITH ev AS (SELECT *, epoch_us({ts}) AS __ts FROM {scan_files(files)} WHERE epoch_us({ts}) < {end}),
        marked AS (SELECT *, max(__ts) FILTER (WHERE __ts < __newest - {retention}) OVER k AS __anchor
                   FROM (SELECT *, max(__ts) OVER k AS __newest FROM ev WINDOW k AS (PARTITION BY {keys}))
                   WINDOW k AS (PARTITION BY {keys})),
        floored AS (SELECT *, count(*) FILTER (WHERE __ts < __anchor) OVER (PARTITION BY {keys}) AS __older
                    FROM marked)
        SELECT * EXCLUDE (__newest) FROM floored WHERE __anchor IS NULL OR __ts >= __anchor
        ORDER BY {keys}, __ts"""
    ).to_arrow_table()
    columns = table.to_pydict()
    members = view.pack(columns["__ts"], view.event_columns(columns), columns[view.id_column])
    keys_of = WindowKeys(project, view.name)
    entities: dict[bytes, list[int]] = {}
    rows = table.num_rows
    for i in range(rows):
        entities.setdefault(view.entity({k: columns[k][i] for k in view.join_keys}), []).append(i)
    loaded = 0
    items = list(entities.items())
    for start in range(0, len(items), batch):
        # one script per entity on its own slot, pipelined (redis-py groups a cluster's by node)
        pipe = client.pipeline(transaction=False)
        for entity, indices in items[start : start + batch]:
            first = indices[0]
            floor = b"%d" % columns["__anchor"][first] if columns["__older"][first] else b""
            args: list[bytes] = [b"%d" % retention, b"%d" % cap, floor]
            for i in indices:
                args += [b"%d" % columns["__ts"][i], members[i]]
            pipe.execute_command("EVAL", ADD, 2, *keys_of.keys(entity), *args)
        loaded += sum(pipe.execute())
    return loaded
