"""Live window features, shown on a new card: pushed transactions count from the next request,
and fall out of each window as time passes, with no job in between.

A customer the generator never made (so nothing else touches it) buys three times, then a fourth
time through ``/v1/predict`` with ``record: true``; the service is asked for its window
features at moments after that: minutes later, past one hour, past one day, past one week.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
from rich.table import Table

from fsml.settings import Settings

CUSTOMER, MERCHANT, FIRST_ID = 9_000_001, 7, 9_000_000_001
SHOWN = ("txn_count_1h", "txn_count_24h", "txn_count_7d", "amount_sum_24h")


def walk(settings: Settings, url: str, day: datetime) -> list[dict[str, Any]]:
    """The steps and what the service answered at each."""
    key = (settings.push_api_key or settings.api_key).get_secret_value()  # type: ignore[union-attr]
    noon = day + timedelta(hours=12)
    steps: list[dict[str, Any]] = []
    with httpx.Client(base_url=url, timeout=10, headers={"X-API-Key": key}) as client:

        def ask(what: str, at: datetime, **extra: Any) -> None:
            body = {
                "customer_id": CUSTOMER,
                "merchant_id": MERCHANT,
                "amount": 30.0,
                "timestamp": at.isoformat(),
                **extra,
            }
            reply = client.post("/v1/predict?include_values=true", json=body)
            reply.raise_for_status()
            data = reply.json()
            values = {
                k.split("__", 1)[1]: v for k, v in data["features"]["values"].items() if k.split("__", 1)[1] in SHOWN
            }
            steps.append({"moment": at, "what": what, **values, "recorded": data.get("recorded")})

        ask("a new card: no history", noon - timedelta(minutes=1))
        pushed = [
            {"transaction_id": FIRST_ID + i, "customer_id": CUSTOMER, "merchant_id": MERCHANT,
             "amount": 20.0 + 10 * i, "timestamp": (noon + timedelta(minutes=5 * i)).isoformat()}
            for i in range(3)
        ]  # fmt: skip
        reply = client.post("/v1/push/transactions", json={"rows": pushed})
        reply.raise_for_status()
        ask("3 transactions pushed (12:00-12:10); a 4th scored and recorded", noon + timedelta(minutes=20),
            transaction_id=FIRST_ID + 3, record=True)  # fmt: skip
        ask("10 minutes later: the 4th counts too", noon + timedelta(minutes=30))
        ask("past one hour: the first three left the 1 h window", noon + timedelta(hours=1, minutes=15))
        ask("past one day: all left the 24 h window", noon + timedelta(days=1, minutes=25))
        ask("past one week: all left the 7 d window", noon + timedelta(days=7, minutes=25))
    return steps


def table(steps: list[dict[str, Any]]) -> Table:
    out = Table(title=f"live window features of customer {CUSTOMER} (GET as of each moment)")
    out.add_column("moment (UTC)")
    out.add_column("what happened")
    for name in SHOWN:
        out.add_column(name, justify="right")
    for step in steps:
        cells = ["missing" if step.get(n) is None else f"{step[n]:g}" for n in SHOWN]
        out.add_row(f"{step['moment']:%m-%d %H:%M}", step["what"], *cells)
    return out
