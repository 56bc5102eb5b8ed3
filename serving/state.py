"""What a serving process holds: settings, the Redis client, metrics, and one slot per model.

A process hosts one or more registered models, one per feature service. Each ``ModelSlot`` is
built at start-up with everything a request needs (request schemas, the current scorer, its
prediction log), so a request finds its model with one dict lookup on its path and never asks
the registry; each slot follows its own champion alias and reloads on its own.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from fsml.features.ingest import Ingestor
from fsml.serving.challenger import PAIRED, Challenger, challenger_version, load_challenger
from fsml.serving.errors import public_reason
from fsml.serving.metrics import Metrics
from fsml.serving.predlog import PredictionLog
from fsml.serving.redis_client import RedisClient
from fsml.serving.redis_cluster import ClusterClient, online_client
from fsml.serving.scorer import Scorer, champion_version, load_champion
from pydantic import BaseModel

from fsml.errors import FsmlError
from fsml.featurestore import ServiceSpec
from fsml.settings import Settings

log = logging.getLogger(__name__)

ONLINE_STORE_ERRORS = (ConnectionError, TimeoutError, OSError)


def redis_client(settings: Settings) -> RedisClient | ClusterClient:
    """Fails fast (FSML_REDIS_TIMEOUT_MS) when Redis is down and reconnects when it is back;
    with ``FSML_REDIS_TYPE=redis_cluster``, routes each read to the node serving its key."""
    return online_client(settings)


@dataclass
class ModelSlot:
    """One hosted model: its feature service, request schemas, current scorer and log."""

    settings: Settings  # the process's settings for this feature service
    spec: ServiceSpec
    single: type[BaseModel]  # request models, built from the service's inputs
    batch: type[BaseModel]
    responses: tuple[type[BaseModel], type[BaseModel]]  # (single, batch) response models
    scorer: Scorer | None = None
    load_error: str | None = None
    predictions: PredictionLog | None = None
    challenger: Challenger | None = None  # shadow and canary (serving.challenger)
    challenger_log: PredictionLog | None = None
    _challenger_task: asyncio.Task | None = None
    record_source: str | None = None  # where `record: true` pushes: the service's label source
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def model_name(self) -> str:
        return self.settings.model_name(self.spec.name)

    def unavailable(self) -> str:
        """Why there is no model, without the file paths the full reason (in the log) may hold."""
        return f"no model loaded for {self.name}: {public_reason(self.load_error) if self.load_error else 'loading'}"

    def open_prediction_log(self, metrics: Metrics) -> None:
        if not self.settings.log_predictions:
            return
        self.predictions = self._log(self.settings.prediction_log_dir, metrics)
        if self.settings.shadow_fraction > 0 or self.settings.canary_fraction > 0:
            self.challenger_log = self._log(self.settings.challenger_log_dir, metrics, PAIRED)

    def _log(self, directory: Path, metrics: Metrics, extra: dict[str, str] | None = None) -> PredictionLog:
        return PredictionLog(
            directory,
            columns={f.column: f.dtype for f in self.spec.features},
            inputs={i.name: i.dtype for i in self.spec.inputs},
            id_field=self.spec.id_field,
            max_rows=self.settings.log_buffer_rows,
            flush_seconds=self.settings.log_flush_seconds,
            on_drop=metrics.log_dropped.inc,
            on_dead_letter=metrics.log_dead_letter.inc,
            extra=extra,
        ).start()

    async def follow_challenger(self, metrics: Metrics) -> None:
        """Take on the registry's challenger beside the current champion, drop a gone one."""
        settings, champion = self.settings, self.scorer
        if (settings.shadow_fraction <= 0 and settings.canary_fraction <= 0) or champion is None:
            return
        try:
            wanted = await asyncio.to_thread(challenger_version, settings)
            current = self.challenger
            if current is not None and current.version == wanted and current.champion is champion:
                return
            found = await asyncio.to_thread(load_challenger, settings, champion, metrics) if wanted else None
        except Exception as exc:  # the champion serves on; the challenger waits for the next check
            log.warning("challenger check for %s failed: %s", self.name, exc)
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

    async def reload(self, metrics: Metrics, only_if_changed: bool = False) -> tuple[str | None, Scorer]:
        """Load the registry's champion and swap it in; in-flight requests keep the old one."""
        async with self._lock:
            previous = self.scorer
            if only_if_changed and previous is not None:
                current = await asyncio.to_thread(champion_version, self.settings)
                if current == previous.version:
                    await self.follow_challenger(metrics)
                    return previous.version, previous
            try:
                scorer = await asyncio.to_thread(load_champion, self.settings)
                self.check_inputs(scorer)
            except Exception:
                metrics.reloads.labels("failed").inc()
                raise
            self.scorer, self.load_error = scorer, None
            await self.follow_challenger(metrics)
            metrics.reloads.labels("ok").inc()
            metrics.model_version.labels(scorer.name).set(float(scorer.version))
            metrics.model_loaded.set(1)
            log.info("serving %s version %s", scorer.name, scorer.version)
            return (previous.version if previous else None), scorer

    def check_inputs(self, scorer: Scorer) -> None:
        wanted = {(i.name, i.dtype) for i in scorer.bundle.card.inputs}
        offered = {(i.name, i.dtype) for i in self.spec.inputs}
        if wanted != offered:
            raise FsmlError(
                f"model version {scorer.version} of {self.name} needs inputs {sorted(wanted)}, but this "
                f"service was started for {sorted(offered)}: restart it"
            )


@dataclass
class ServiceState:
    settings: Settings
    redis: RedisClient | ClusterClient
    slots: dict[str, ModelSlot]  # by feature service; the first is the default model
    metrics: Metrics = field(default_factory=Metrics)
    ingestor: Ingestor | None = None  # pushes, for every push source of the repo
    push_error: str | None = None  # why there is no ingestor
    _last_error_log: float = 0.0

    @property
    def default(self) -> ModelSlot:
        return next(iter(self.slots.values()))

    @property
    def scorer(self) -> Scorer | None:
        """The default model's scorer (``/v1/predict``)."""
        return self.default.scorer

    def slot(self, name: str | None) -> ModelSlot:
        """The slot of a hosted feature service (the default one for None)."""
        if name is None:
            return self.default
        found = self.slots.get(name)
        if found is None:
            raise FsmlError(f"feature service {name!r} is not served here (served: {', '.join(self.slots)})")
        return found

    async def reload(self, name: str | None = None, only_if_changed: bool = False) -> tuple[str | None, Scorer]:
        return await self.slot(name).reload(self.metrics, only_if_changed)

    async def load_all(self) -> None:
        """Start-up: load every model; one that cannot load leaves /readyz saying why."""
        for slot in self.slots.values():
            try:
                await slot.reload(self.metrics)
            except Exception as exc:
                slot.load_error = str(exc)
                log.warning("no model loaded at start-up for %s: %s", slot.name, exc)

    def open_prediction_logs(self) -> None:
        for slot in self.slots.values():
            slot.open_prediction_log(self.metrics)

    def close_challengers(self) -> None:
        """On the event loop, before the logs close: the last shadow rows, the workers stopped."""
        for slot in self.slots.values():
            slot.close_challenger()

    def close_prediction_logs(self) -> None:
        for slot in self.slots.values():
            for prediction_log in (slot.predictions, slot.challenger_log):
                if prediction_log is not None:
                    prediction_log.close()

    def online_store_failed(self, exc: BaseException) -> None:
        """Count every failure; log at most one line a second so an outage does not flood logs."""
        self.metrics.online_errors.inc()
        now = time.monotonic()
        if now - self._last_error_log >= 1.0:
            self._last_error_log = now
            log.warning("online store unavailable: %s: %s", type(exc).__name__, exc)

    async def recover_pushes(self) -> bool:
        """Finish the pushes that died half-way (their pending files); at start-up, before the
        first request. False when Redis cannot be reached yet."""
        try:
            recovered = await asyncio.wait_for(self.ingestor.recover(), 60)  # type: ignore[union-attr]
        except (TimeoutError, *ONLINE_STORE_ERRORS) as exc:
            self.online_store_failed(exc)
            return False
        if recovered:
            log.info("recovered %d pending push file(s)", recovered)
        return True

    async def finish_pushes(self, done: bool, every: float = 1.0) -> None:
        """Keep finishing pending pushes: the start-up recovery if it could not run, then this
        process's own failed ones, so a pending file does not wait for the next push."""
        while True:
            try:
                if not done:
                    done = await self.recover_pushes()
                elif self.ingestor.unresolved:  # type: ignore[union-attr]
                    await self.ingestor.resolve()  # type: ignore[union-attr]
            except ONLINE_STORE_ERRORS as exc:
                self.online_store_failed(exc)
            except Exception:  # keep serving; the next round retries
                log.exception("pending pushes could not be finished yet")
            await asyncio.sleep(every)

    async def watch_champion(self) -> None:
        """Follow each model's champion alias, so every worker picks up a promotion by itself."""
        interval = self.settings.reload_poll_seconds
        while interval > 0:
            await asyncio.sleep(interval)
            for slot in self.slots.values():
                try:
                    await slot.reload(self.metrics, only_if_changed=True)
                except Exception as exc:  # keep serving the current model; say why once per poll
                    slot.load_error = str(exc)
                    log.warning("champion check for %s failed: %s", slot.name, exc)
