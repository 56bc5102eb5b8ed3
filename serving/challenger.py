"""The challenger beside the champion on live traffic: shadow scoring, canary answers, and the
challenger's own log with both models' scores on the same rows.

- **Shadow** (``FSML_SHADOW_FRACTION``): after the champion has answered, a share of the rows is
  queued with the features already read for the champion; a background task on the same event
  loop scores them with the challenger in batches (when ``BATCH`` rows wait, or ``LINGER`` after
  the first: one LightGBM call for many rows costs less CPU than one per row), yielding to
  requests between batches, so the champion's answers never wait on more than one batch. The
  queue is bounded (``FSML_SHADOW_QUEUE_ROWS``): rows that do not fit are dropped and counted,
  never waited for.
- **Canary** (``FSML_CANARY_FRACTION``): entities whose key falls in the canary
  (``serving.canary``) are answered by the challenger; if it fails on a row, the champion answers
  it and the failure counts against the canary. Its health is checked as it goes; crossing a
  threshold rolls the canary back at once in this process, then for every process through the
  registry (a tag on the version, which stops it being loaded as a challenger) and is recorded in
  the triggers log.
- **The challenger's log** (``<prediction log>/challenger``): every row the challenger scored,
  with the champion's score and version and the route (shadow or canary), for the promotion
  gate's live comparison (``training.live``).

A challenger is another version of the champion's registered model. It reuses the features read
for the champion, so one whose model needs a feature the champion does not read is not taken on
(a warning says so).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from fsml.serving.canary import CanaryHealth, CanaryLimits, routed
from fsml.serving.features import FeatureVector
from fsml.serving.metrics import Metrics
from fsml.serving.predlog import PredictionLog
from fsml.serving.scorer import Scorer

from fsml import registry
from fsml.events import record
from fsml.settings import Settings

log = logging.getLogger(__name__)

PAIRED = {"paired_score": "float", "paired_version": "string", "route": "string"}
BATCH = 32  # shadow rows scored per turn of the event loop
LINGER = 0.05  # seconds the first queued shadow row waits for others


@dataclass
class Pending:
    """A row the champion answered, waiting for the challenger's score."""

    at: datetime
    row: dict[str, Any]
    vector: FeatureVector
    champion_score: float


@dataclass
class Challenger:
    settings: Settings
    scorer: Scorer
    champion: Scorer
    metrics: Metrics
    predictions: PredictionLog | None = None
    health: CanaryHealth | None = None
    rolled_back: str | None = None
    queue: deque = field(default_factory=deque)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: set = field(default_factory=set)  # rollbacks under way (a reference keeps them alive)
    _timer: asyncio.TimerHandle | None = None
    _draw: random.Random = field(init=False)  # which rows are shadowed: seeded, so a run repeats

    def __post_init__(self) -> None:
        self._draw = random.Random(self.settings.seed)

    @property
    def version(self) -> str:
        return self.scorer.version

    @property
    def model(self) -> str:
        """The feature service: the model label of the service's metrics."""
        return self.settings.feature_service

    @property
    def canary(self) -> bool:
        return self.settings.canary_fraction > 0 and self.rolled_back is None

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "version": self.version,
            "shadow_fraction": self.settings.shadow_fraction,
            "canary_fraction": self.settings.canary_fraction if self.rolled_back is None else 0.0,
            "queued": len(self.queue),
        }
        if self.health is not None:
            out["canary"] = self.health.summary() | {"rolled_back": self.rolled_back}
        return out

    # --- on the request path: list operations and, for canary rows, the challenger's score

    def canary_rows(self, rows: list[dict[str, Any]], key: str) -> list[int]:
        if not self.canary:
            return []
        fraction = self.settings.canary_fraction
        return [i for i, row in enumerate(rows) if routed(row.get(key), fraction)]

    def answer(self, vectors: list[FeatureVector]) -> np.ndarray | None:
        """The challenger's scores for canary rows, or None if it failed (the champion answers)."""
        began = time.perf_counter()
        try:
            scores = self.scorer.predict(vectors)
            if not np.all(np.isfinite(scores)) or np.any((scores < 0) | (scores > 1)):
                raise ValueError("scores outside [0, 1]")
        except Exception as exc:  # any failure of the challenger is the canary's, not the request's
            self.health.failed(len(vectors))
            self.metrics.challenger_errors.labels(self.model).inc(len(vectors))
            log.warning("canary v%s failed on %d rows: %s", self.version, len(vectors), exc)
            return None
        finally:
            self.health.timed(time.perf_counter() - began)
        return scores

    def answered(self, at: datetime, row: dict[str, Any], vector: FeatureVector, ours: float, theirs: float) -> None:
        self.health.answered(ours, theirs)
        self.metrics.challenger_rows.labels(self.model, "canary").inc()
        self._log(at, row, vector, ours, theirs, "canary")

    def shadow(self, items: list[Pending]) -> None:
        """Queue a share of the champion's rows for the challenger (bounded: drop, never wait)."""
        fraction = self.settings.shadow_fraction
        if fraction <= 0:
            return
        room = self.settings.shadow_queue_rows - len(self.queue)
        picked = items if fraction >= 1 else [item for item in items if self._draw.random() < fraction]
        if len(picked) > room:
            self.metrics.challenger_dropped.labels(self.model).inc(len(picked) - max(room, 0))
            picked = picked[: max(room, 0)]
        if picked:
            self.queue.extend(picked)
            if len(self.queue) >= BATCH:
                self._wake.set()
            elif self._timer is None:
                self._timer = asyncio.get_running_loop().call_later(LINGER, self._wake.set)

    def beside(
        self, rows: list[dict[str, Any]], vectors: list[FeatureVector], scores: np.ndarray, times: list[datetime]
    ) -> tuple[list[Scorer], np.ndarray]:
        """After the champion scored ``rows``: the canary's rows answered by the challenger, the
        others queued for its shadow score. Returns who answers each row, and the scores."""
        by = [self.champion] * len(rows)
        canary = self.canary_rows(rows, self.champion.bundle.card.join_keys[0])
        ours = self.answer([vectors[i] for i in canary]) if canary else None
        if ours is not None:
            scores = scores.copy()
            for i, score in zip(canary, ours, strict=True):
                self.answered(times[i], rows[i], vectors[i], float(score), float(scores[i]))
                by[i], scores[i] = self.scorer, score
        if self.settings.shadow_fraction > 0:
            self.shadow(
                [
                    Pending(times[i], rows[i], vectors[i], float(scores[i]))
                    for i in range(len(rows))
                    if by[i] is self.champion
                ]
            )
        reason = self.judge()
        if reason is not None:
            self._tasks.add(task := asyncio.get_running_loop().create_task(self.roll_back_everywhere(reason)))
            task.add_done_callback(self._tasks.discard)
        return by, scores

    def judge(self) -> str | None:
        """Roll the canary back if its health says so; the reason, the first time."""
        if self.health is None or self.rolled_back is not None:
            return None
        reason = self.health.verdict()
        if reason is not None:
            self.rolled_back = reason
            self.metrics.canary_rollbacks.labels(self.model).inc()
            log.warning("canary v%s rolled back: %s", self.version, reason)
        return reason

    # --- off the request path

    async def run(self) -> None:
        """Score queued shadow rows, a small batch per turn of the event loop."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            while self.queue:
                self.drain(BATCH)
                await asyncio.sleep(0)  # let requests in between batches

    def drain(self, most: int | None = None) -> None:
        """Score up to ``most`` queued rows (all of them at shutdown)."""
        count = len(self.queue) if most is None else min(most, len(self.queue))
        batch = [self.queue.popleft() for _ in range(count)]
        if not batch:
            return
        try:
            scores = self.scorer.predict([item.vector for item in batch])
        except Exception as exc:  # a failing challenger must not stop the worker
            self.metrics.challenger_errors.labels(self.model).inc(len(batch))
            log.warning("shadow v%s failed on %d rows: %s", self.version, len(batch), exc)
            return
        for item, score in zip(batch, scores, strict=True):
            self._log(item.at, item.row, item.vector, float(score), item.champion_score, "shadow")
        self.metrics.challenger_rows.labels(self.model, "shadow").inc(len(batch))

    async def roll_back_everywhere(self, reason: str) -> None:
        """Tag the version in the registry (every process stops its canary at its next check)
        and record the rollback in the triggers log."""
        name = self.scorer.name
        event = {
            "event": "canary",
            "outcome": "rolled back",
            "model": name,
            "challenger_version": self.version,
            "champion_version": self.champion.version,
            "reason": reason,
            **(self.health.summary() if self.health else {}),
        }

        def write() -> None:
            client = registry.client(self.settings, create=False)
            client.set_model_version_tag(name, self.version, registry.CANARY_ROLLED_BACK, reason)
            record(self.settings, event)

        try:
            await asyncio.to_thread(write)
        except Exception as exc:  # this process has stopped its canary already; say why the rest may not
            log.error("canary v%s rolled back here, but the registry was not told: %s", self.version, exc)

    def _log(self, at: datetime, row: dict[str, Any], vector: FeatureVector, ours: float, theirs: float, route: str):
        if self.predictions is not None:
            self.predictions.append(
                at,
                row,
                vector.values,
                vector.missing,
                vector.stale,
                ours,
                self.scorer.name,
                self.version,
                (theirs, self.champion.version, route),
            )


def canary_limits(settings: Settings, champion: Scorer) -> CanaryLimits:
    return CanaryLimits(
        min_rows=settings.canary_min_rows,
        max_error_rate=settings.canary_max_error_rate,
        max_p99_ms=settings.canary_max_p99_ms,
        max_score_distance=settings.canary_max_score_distance,
        score_scale=float(champion.bundle.card.score_reference.get("std", 0.0)) or 1.0,
    )


def challenger_version(settings: Settings) -> str | None:
    """The registry's current challenger, unless its canary was rolled back (blocking I/O)."""
    found = registry.version_by_alias(
        registry.client(settings, create=False), settings.model_name(settings.feature_service), registry.CHALLENGER
    )
    if found is None or found.tags.get(registry.CANARY_ROLLED_BACK):
        return None
    return str(found.version)


def load_challenger(settings: Settings, champion: Scorer, metrics: Metrics) -> Challenger | None:
    """The challenger of the champion's model, ready to score beside it (blocking I/O)."""
    if settings.shadow_fraction <= 0 and settings.canary_fraction <= 0:
        return None
    version = challenger_version(settings)
    if version is None or version == champion.version:
        return None
    client = registry.client(settings, create=False)
    bundle = registry.load_bundle(registry.get_version(client, champion.name, version))
    missing = sorted(set(bundle.card.columns) - set(champion.bundle.card.columns))
    if missing:
        log.warning(
            "challenger v%s needs features the champion does not read (%s): no shadow, no canary", version, missing
        )
        return None
    scorer = Scorer(bundle=bundle, reader=champion.reader, name=champion.name, alias=registry.CHALLENGER)
    health = CanaryHealth(canary_limits(settings, champion)) if settings.canary_fraction > 0 else None
    log.info("challenger v%s beside champion v%s", version, champion.version)
    return Challenger(settings, scorer, champion, metrics, health=health)
