"""Which requests the challenger answers (canary), and when the canary must stop.

Routing is deterministic by entity key: the first join key's value hashed (CRC-32, as load
balancers hash a session key) into 10,000 buckets, and a key whose bucket falls under
``FSML_CANARY_FRACTION`` goes to the challenger. One customer therefore sees one model for the
length of the canary, and a bigger fraction only adds customers.

The canary's health is judged on the rows it answered, once it answered
``FSML_CANARY_MIN_ROWS``: its error rate (the challenger failed and the champion answered
instead), the 99th percentile of the time the challenger took per request, and how far its scores
are from the champion's on the same rows (Wasserstein distance in the champion's training score
standard deviations). Crossing any threshold rolls the canary back.
"""

from __future__ import annotations

import zlib
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

BUCKETS = 10_000
RECENT = 5_000  # rows (and requests) the health is judged on: the most recent ones


def canary_bucket(key: Any) -> int:
    return zlib.crc32(str(key).encode()) % BUCKETS


def routed(key: Any, fraction: float) -> bool:
    """Whether the entity ``key`` is answered by the challenger at this canary ``fraction``."""
    return fraction > 0 and key is not None and canary_bucket(key) < fraction * BUCKETS


@dataclass(frozen=True)
class CanaryLimits:
    min_rows: int
    max_error_rate: float
    max_p99_ms: float
    max_score_distance: float
    score_scale: float  # the champion's training score standard deviation


@dataclass
class CanaryHealth:
    """What the canary did, recent rows only; ``verdict`` says why it must stop, if it must."""

    limits: CanaryLimits
    rows: int = 0
    errors: int = 0
    seconds: deque = field(default_factory=lambda: deque(maxlen=RECENT))  # per canary request
    ours: deque = field(default_factory=lambda: deque(maxlen=RECENT))  # challenger scores
    theirs: deque = field(default_factory=lambda: deque(maxlen=RECENT))  # champion, same rows

    def answered(self, challenger: float, champion: float) -> None:
        self.rows += 1
        self.ours.append(challenger)
        self.theirs.append(champion)

    def failed(self, count: int = 1) -> None:
        self.rows += count
        self.errors += count

    def timed(self, seconds: float) -> None:
        self.seconds.append(seconds)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"rows": self.rows, "errors": self.errors}
        out["error_rate"] = self.errors / self.rows if self.rows else 0.0
        out["p99_ms"] = float(np.percentile(self.seconds, 99) * 1000) if self.seconds else 0.0
        if self.ours:
            ours, theirs = np.sort(np.asarray(self.ours)), np.sort(np.asarray(self.theirs))
            out["score_distance"] = float(np.mean(np.abs(ours - theirs)) / max(self.limits.score_scale, 1e-12))
        else:
            out["score_distance"] = 0.0
        return out

    def verdict(self) -> str | None:
        """Why the canary must be rolled back, or None (also while it has too few rows)."""
        if self.rows < self.limits.min_rows:
            return None
        s, limits = self.summary(), self.limits
        checks = [
            (
                s["error_rate"] > limits.max_error_rate,
                f"error rate {s['error_rate']:.2%} > {limits.max_error_rate:.2%}",
            ),
            (s["p99_ms"] > limits.max_p99_ms, f"p99 {s['p99_ms']:.2f} ms > {limits.max_p99_ms:g} ms"),
            (
                s["score_distance"] > limits.max_score_distance,
                f"scores {s['score_distance']:.3f} std from the champion's on the same rows "
                f"> {limits.max_score_distance:g}",
            ),
        ]
        failed = [reason for bad, reason in checks if bad]
        return "; ".join(failed) if failed else None
