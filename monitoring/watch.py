"""``fsml monitor watch``: refresh the snapshot views from the pushed rows, monitor, evaluate the
triggers, retrain when one fires, sleep, repeat.

One failing round (no traffic yet, a broken log file, a crash inside a retraining) is logged
and recorded; the watcher goes on with the next round.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from fsml.monitoring.monitor import run_monitor
from fsml.monitoring.retrain import retrain
from fsml.monitoring.triggers import automatic_triggers, describe, record
from fsml.serving.materialize import refresh

from fsml.errors import FsmlError
from fsml.settings import Settings

log = logging.getLogger(__name__)

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd])\s*", text)
    if not match:
        raise FsmlError(f"--every: {text!r} is not a duration like 30s, 15m, 1h or 1d")
    return timedelta(seconds=float(match[1]) * UNITS[match[2]])


def run_once(settings: Settings, now: datetime | None = None) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    try:  # the daily cadence of snapshot views, from what was pushed since the last round
        refreshed = refresh(settings, now)
    except FsmlError as exc:  # e.g. nothing pushed yet: monitoring still runs
        log.warning("refresh: %s", exc)
        refreshed = {"error": exc.message}
    try:
        monitor = run_monitor(settings, now)
    except FsmlError as exc:  # e.g. no traffic logged yet: other triggers still count
        log.warning("monitor: %s", exc)
        monitor = None
    triggers = automatic_triggers(settings, monitor, now)
    round_ = {
        "refresh": refreshed,
        "monitor_action": monitor["action"] if monitor else None,
        "triggers": [t.__dict__ for t in triggers],
    }
    if not triggers:
        record(settings, {"event": "watch", **round_, "retrain": None})
        return round_ | {"retrain": None}
    outcome = retrain(settings, reason=describe(triggers), automatic=True, as_of=now)
    record(settings, {"event": "watch", **round_, "retrain": outcome.get("skipped") or "done"})
    return round_ | {"retrain": outcome}


def watch(
    settings: Settings,
    every: timedelta,
    rounds: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> list[dict[str, Any]]:
    done: list[dict[str, Any]] = []
    while rounds is None or len(done) < rounds:
        try:
            done.append(run_once(settings))
        except Exception as exc:  # one bad round must not stop the loop
            log.error("watch round failed: %s", exc)
            record(settings, {"event": "watch", "error": str(exc)})
            done.append({"error": str(exc)})
        if rounds is None or len(done) < rounds:
            sleep(every.total_seconds())
    return done
