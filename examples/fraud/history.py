"""The generated history, pushed as the application would have pushed it.

The generator writes what an application and its neighbours hold (``data/raw``). Everything
that happened before ``until`` is pushed to the repo's ``transactions`` and ``labels`` sources,
offline only (a backfill): ``fsml features build`` then computes the tables and
``fsml features materialize`` loads what the online store needs. What comes after ``until`` is
left for ``fsml replay`` to send as live traffic.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fsml.settings import Settings


def push_history(settings: Settings, until: datetime) -> dict[str, Any]:
    from fsml.serving.push import push_file

    return {
        source: push_file(settings, source, settings.raw_dir / f"{source}.parquet", offline=True, before=until)
        for source in ("transactions", "labels")
    }
