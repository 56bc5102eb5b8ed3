"""Why and when to retrain: triggers, one retraining at a time, and a cooldown.

Triggers: drift or poor performance (from the monitor), a schedule (the champion is older than
``FSML_RETRAIN_EVERY_DAYS``), new code (the training code or feature repo fingerprint differs
from the champion's record) and manual requests. Every evaluation is appended, with its reason
and what was done about it, to ``triggers.jsonl``. An exclusive file lock allows one retraining
at a time across processes; automatic triggers wait for the cooldown after the last retraining.

A data-quality incident (a monitor verdict with the ``data_quality`` cause) holds every automatic
retraining, whatever its trigger, until a later monitor run measures the data healthy: a model
retrained on a broken column learns the break. The incident's opening and end are recorded in
``triggers.jsonl``; a manual retraining still runs, with a warning.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from fsml import atomic, registry
from fsml.events import record
from fsml.fingerprint import code_fingerprint, feature_repo_fingerprint
from fsml.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Trigger:
    kind: str  # "drift", "performance", "schedule", "code" or "manual"
    reason: str


@dataclass
class State:
    """What the loop remembers between runs (``state.json``)."""

    last_retrain_at: str | None = None  # any attempt: the cooldown counts from here
    last_reason: str | None = None
    last_outcome: str | None = None
    last_success_at: str | None = None  # a finished retraining: the schedule counts from here
    incident_since: str | None = None  # an open data-quality incident: automatic retraining held
    incident_reason: str | None = None

    @classmethod
    def load(cls, settings: Settings) -> State:
        path = settings.monitoring_dir / "state.json"
        if not path.exists():
            return cls()
        try:
            return cls(**json.loads(path.read_text()))
        except (ValueError, TypeError):
            log.warning("ignoring an unreadable %s", path)
            return cls()

    def save(self, settings: Settings) -> None:
        atomic.write_text(settings.monitoring_dir / "state.json", json.dumps(asdict(self), indent=2))

    def cooldown_until(self, settings: Settings) -> datetime | None:
        if self.last_retrain_at is None:
            return None
        return datetime.fromisoformat(self.last_retrain_at) + timedelta(hours=settings.retrain_cooldown_hours)


def follow_incident(settings: Settings, summary: dict[str, Any]) -> None:
    """Open an incident on a data-quality verdict; close it on the next measured healthy one."""
    state = State.load(settings)
    broken = "data_quality" in summary.get("causes", [])
    if broken and state.incident_since is None:
        columns = [b["column"] for b in summary.get("data_quality", [])]
        state.incident_since = summary["as_of"]
        state.incident_reason = f"data quality: {', '.join(columns[:5])}" + (
            f" and {len(columns) - 5} more" if len(columns) > 5 else ""
        )
        state.save(settings)
        record(
            settings,
            {
                "event": "incident",
                "status": "opened",
                "reason": state.incident_reason,
                "evidence": summary.get("evidence", {}).get("data_quality", []),
                "report": summary.get("report"),
            },
        )
        log.warning("data-quality incident: %s; automatic retraining held", state.incident_reason)
    elif not broken and state.incident_since is not None and summary.get("verdict") == "measured":
        record(
            settings,
            {
                "event": "incident",
                "status": "resolved",
                "since": state.incident_since,
                "reason": state.incident_reason,
                "report": summary.get("report"),
            },
        )
        log.info("data-quality incident since %s resolved: the data are healthy again", state.incident_since)
        state.incident_since = state.incident_reason = None
        state.save(settings)


def held(settings: Settings) -> str | None:
    """Why automatic retraining is held, or None."""
    state = State.load(settings)
    if state.incident_since is None:
        return None
    return f"data-quality incident open since {state.incident_since} ({state.incident_reason})"


def automatic_triggers(settings: Settings, monitor: dict[str, Any] | None, now: datetime) -> list[Trigger]:
    triggers = []
    if monitor is not None and monitor.get("action") == "retrain":
        if monitor.get("drift_detected"):
            evidence = monitor.get("evidence", {})
            shown = [*evidence.get("distribution", []), *evidence.get("prediction", [])]
            more = f" and {len(shown) - 5} more" if len(shown) > 5 else ""
            causes = ", ".join(c for c in monitor.get("causes", []) if c in ("distribution", "prediction"))
            triggers.append(Trigger("drift", f"{causes}: {'; '.join(shown[:5])}{more}"))
        performance = monitor.get("performance", {})
        if performance.get("degraded"):
            triggers.append(
                Trigger(
                    "performance",
                    f"PR-AUC {performance['pr_auc']:.3f} on matured labels, below the floor {performance['floor']:.3f}",
                )
            )
    triggers += _champion_triggers(settings, now)
    return triggers


def _champion_triggers(settings: Settings, now: datetime) -> list[Trigger]:
    version = registry.champion_version(settings)
    if version is None:
        return [Trigger("schedule", "there is no champion yet")]
    _, tags = registry.run_record(registry.client(settings, create=False), version.run_id)
    found = []
    times = [tags.get("fsml.window.as_of"), State.load(settings).last_success_at]
    last = max(datetime.fromisoformat(t) for t in times if t)
    if settings.retrain_every_days > 0 and now - last > timedelta(days=settings.retrain_every_days):
        found.append(
            Trigger(
                "schedule",
                f"last training {last.isoformat()}, over {settings.retrain_every_days:g} days ago",
            )
        )
    if tags.get("fsml.code_fingerprint") not in (None, code_fingerprint()):
        found.append(Trigger("code", "the training code changed since the champion was trained"))
    if tags.get("fsml.feature_repo_fingerprint") not in (
        None,
        feature_repo_fingerprint(settings.feature_repo),
    ):
        found.append(Trigger("code", "the feature repo changed since the champion was trained"))
    return found


def describe(triggers: list[Trigger]) -> str:
    return "; ".join(f"{t.kind}: {t.reason}" for t in triggers)
