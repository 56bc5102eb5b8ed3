"""The triggers log (``triggers.jsonl``): every decision of the loop that keeps models healthy,
one JSON line each: retraining triggers and outcomes, data-quality incidents, canary rollbacks
and manual rollbacks. Written by the monitor, the retraining pipeline, the service and the CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from fsml.settings import Settings


def record(settings: Settings, event: dict[str, Any]) -> None:
    settings.monitoring_dir.mkdir(parents=True, exist_ok=True)
    line = json.dumps({"at": datetime.now(UTC).isoformat(), **event}, default=str)
    with open(settings.monitoring_dir / "triggers.jsonl", "a") as out:
        out.write(line + "\n")
