"""What a serving process holds: settings, the Redis client, the current scorer, metrics."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from fsml.serving.metrics import Metrics
from fsml.serving.predlog import PredictionLog
from fsml.serving.redis_client import RedisClient
from fsml.serving.redis_cluster import ClusterClient
from fsml.serving.scorer import Scorer, champion_version, load_champion

from fsml.errors import FsmlError
from fsml.featurestore import Input
from fsml.settings import Settings

log = logging.getLogger(__name__)

ONLINE_STORE_ERRORS = (ConnectionError, TimeoutError, OSError)


def redis_client(settings: Settings) -> RedisClient | ClusterClient:
    """Fails fast (FSML_REDIS_TIMEOUT_MS) when Redis is down and reconnects when it is back;
    with ``FSML_REDIS_TYPE=redis_cluster``, routes each read to the node serving its key."""
    timeout = settings.redis_timeout_ms / 1000
    if settings.redis_type == "redis_cluster":
        return ClusterClient(settings.redis_url, timeout=timeout)
    return RedisClient(settings.redis_url, timeout=timeout)


@dataclass
class ServiceState:
    settings: Settings
    inputs: tuple[Input, ...]
    redis: RedisClient | ClusterClient
    metrics: Metrics = field(default_factory=Metrics)
    scorer: Scorer | None = None
    load_error: str | None = None
    predictions: PredictionLog | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _last_error_log: float = 0.0

    def open_prediction_log(self, columns: dict[str, str]) -> None:
        if not self.settings.log_predictions:
            return
        self.predictions = PredictionLog(
            self.settings.prediction_log_dir,
            columns=columns,
            inputs={i.name: i.dtype for i in self.inputs},
            max_rows=self.settings.log_buffer_rows,
            flush_seconds=self.settings.log_flush_seconds,
            on_drop=self.metrics.log_dropped.inc,
            on_dead_letter=self.metrics.log_dead_letter.inc,
        ).start()

    async def reload(self, only_if_changed: bool = False) -> tuple[str | None, Scorer]:
        """Load the registry's champion and swap it in; in-flight requests keep the old one."""
        async with self._lock:
            previous = self.scorer
            if only_if_changed and previous is not None:
                current = await asyncio.to_thread(champion_version, self.settings)
                if current == previous.version:
                    return previous.version, previous
            try:
                scorer = await asyncio.to_thread(load_champion, self.settings)
                self.check_inputs(scorer)
            except Exception:
                self.metrics.reloads.labels("failed").inc()
                raise
            self.scorer, self.load_error = scorer, None
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
