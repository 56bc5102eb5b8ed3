"""The online window engine's cost per request: unpacking a card's recent events and computing
the twelve window features of the example's stream view at the request's time, in process.

This is what ``/v1/predict`` adds per row for window views (besides one more Redis command in
the same round trip); the target is tens of microseconds for the event counts cards have.
"""

from __future__ import annotations

import timeit
from typing import Any

import numpy as np

from bench.common import BenchWorld

COUNTS = (5, 20, 60, 200)  # events kept for a card: quiet, typical, busy, a burst


def events(view: Any, n: int, t: int, seed: int = 0) -> list[bytes]:
    """Members as Redis returns them: packed events, newest first."""
    rng = np.random.default_rng(seed)
    times = sorted((t - rng.integers(1, 8 * 86_400_000_000, n)).tolist(), reverse=True)
    columns = {
        "amount": rng.uniform(1, 500, n).tolist(),
        "merchant_id": rng.integers(1, 300, n).tolist(),
        "is_night": rng.integers(0, 2, n).tolist(),
    }
    return view.pack(times, {c: columns.get(c, [1.0] * n) for c in view.columns}, list(range(n)))


def run(world: BenchWorld, repeats: int = 9) -> dict[str, Any]:
    from fsml.features.sources import load_repo

    from fsml.featurestore import open_store

    view = load_repo(open_store(world.settings)).window("customer_transaction_windows")
    t = int(world.end.timestamp()) * 1_000_000
    results: dict[str, Any] = {"view": view.name, "features": len(view.aggregates)}
    for n in COUNTS:
        members = events(view, n, t)
        runs = timeit.repeat(lambda m=members: view.evaluate(view.unpack(m), t, None), number=500, repeat=repeats)
        per_call = sorted(r / 500 * 1e6 for r in runs)
        results[f"events_{n}"] = {"best_us": per_call[0], "median_us": per_call[len(per_call) // 2]}
    results["summary"] = {"typical_us": results["events_20"]["best_us"], "busy_us": results["events_60"]["best_us"]}
    return results
