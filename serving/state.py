"""What a serving process holds: settings, the Redis client, the current scorer, metrics."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from fsml.serving.challenger import PAIRED, Challenger, challenger_version, load_challenger
from fsml.serving.metrics import Metrics
from fsml.serving.predlog import PredictionLog
from fsml.serving.redis_client import RedisClient
from fsml.serving.scorer import Scorer, champion_version, load_champion

from fsml.errors import FsmlError
from fsml.featurestore import Input
from fsml.settings import Settings

log = logging.getLogger(__name__)

ONLINE_STORE_ERRORS = (ConnectionError, TimeoutError, OSError)


def redis_client(settings: Settings) -> RedisClient:
    """Fails fast (FSML_REDIS_TIMEOUT_MS) when Redis is down and reconnects when it is back."""
    return RedisClient(settings.redis_url, timeout=settings.redis_timeout_ms / 1000)


@dataclass
class ServiceState:
    settings: Settings
    inputs: tuple[Input, ...]
    redis: RedisClient
    metrics: Metrics = field(default_factory=Metrics)
    scorer: Scorer | None = None
    load_error: str | None = None
    predictions: PredictionLog | None = None
    challenger: Challenger | None = None  # shadow and canary (serving.challenger)
    challenger_log: PredictionLog | None = None
    _challenger_task: asyncio.Task | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _last_error_log: float = 0.0

    def open_prediction_log(self, columns: dict[str, str]) -> None:
        if not self.settings.log_predictions:
            return
        self.predictions = self._log(self.settings.prediction_log_dir, columns)
        if self.settings.shadow_fraction > 0 or self.settings.canary_fraction > 0:
            self.challenger_log = self._log(self.settings.challenger_log_dir, columns, PAIRED)

    def _log(self, directory: Path, columns: dict[str, str], extra: dict[str, str] | None = None) -> PredictionLog:
        return PredictionLog(
            directory,
            columns=columns,
            inputs={i.name: i.dtype for i in self.inputs},
            max_rows=self.settings.log_buffer_rows,
            flush_seconds=self.settings.log_flush_seconds,
            on_drop=self.metrics.log_dropped.inc,
            on_dead_letter=self.metrics.log_dead_letter.inc,
            extra=extra,
        ).start()

    async def follow_challenger(self) -> None:
        """Take on the registry's challenger beside the current champion, drop a gone one."""
        settings, champion = self.settings, self.scorer
        if (settings.shadow_fraction <= 0 and settings.canary_fraction <= 0) or champion is None:
            return
        try:
            wanted = await asyncio.to_thread(challenger_version, settings)
            current = self.challenger
            if current is not None and current.version == wanted and current.champion is champion:
                return
            found = await asyncio.to_thread(load_challenger, settings, champion, self.metrics) if wanted else None
        except Exception as exc:  # the champion serves on; the challenger waits for the next check
            log.warning("challenger check failed: %s", exc)
            return
        if self._challenger_task is not None:
            self._challenger_task.cancel()
        if found is not None:
            found.predictions = self.challenger_log
            self._challenger_task = asyncio.create_task(found.run())
        self.challenger = found

    def close_challenger(self) -> None:
        """Shutdown: score what waits in the shadow queue, stop the worker."""
        if self._challenger_task is not None:
            self._challenger_task.cancel()
        if self.challenger is not None:
            self.challenger.drain()

    async def reload(self, only_if_changed: bool = False) -> tuple[str | None, Scorer]:
        """Load the registry's champion and swap it in; in-flight requests keep the old one."""
        async with self._lock:
            previous = self.scorer
            if only_if_changed and previous is not None:
                current = await asyncio.to_thread(champion_version, self.settings)
                if current == previous.version:
                    await self.follow_challenger()
                    return previous.version, previous
            try:
                scorer = await asyncio.to_thread(load_champion, self.settings)
                self.check_inputs(scorer)
            except Exception:
                self.metrics.reloads.labels("failed").inc()
                raise
            self.scorer, self.load_error = scorer, None
            await self.follow_challenger()
            self.metrics.reloads.labels("ok").inc()
            self.metrics.model_version.labels(scorer.name).set(float(scorer.version))
            log.info("serving %s version %s", scorer.name, scorer.version)
            return (previous.version if previous else None), scorer

    def check_inputs(self, scorer: Scorer) -> None:
        wanted = {(i.name, i.dtype) for i in scorer.bundle.card.inputs}
        offered = {(i.name, i.dtype) for i in self.inputs}
        if wanted != offered:
            raise FsmlError(
                f"model version {scorer.version} needs inputs {sorted(wanted)}, but this service "
                f"was started for {sorted(offered)}: restart it"
            )

    def online_store_failed(self, exc: BaseException) -> None:
        """Count every failure; log at most one line a second so an outage does not flood logs."""
        self.metrics.online_errors.inc()
        now = time.monotonic()
        if now - self._last_error_log >= 1.0:
            self._last_error_log = now
            log.warning("online store unavailable: %s: %s", type(exc).__name__, exc)

    async def watch_champion(self) -> None:
        """Follow the champion alias, so every worker picks up a promotion by itself."""
        interval = self.settings.reload_poll_seconds
        while interval > 0:
            await asyncio.sleep(interval)
            try:
                await self.reload(only_if_changed=True)
            except Exception as exc:  # keep serving the current model; say why once per poll
                self.load_error = str(exc)
                log.warning("champion check failed: %s", exc)
