"""The retraining pipeline: features, online store, training, gate, serving reload.

Each step has an input fingerprint; a step whose inputs match its last successful run is
skipped and its recorded output reused, as pipeline engines cache their steps. Only the gate
step can promote, and only after a training that finished. Any failure is recorded, releases
the lock and leaves the registry's aliases as they were.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from fsml.monitoring.triggers import State, held, record

from fsml import atomic, registry
from fsml.errors import FsmlError
from fsml.fingerprint import code_fingerprint, feature_repo_fingerprint, table_digest
from fsml.locks import retrain_lock
from fsml.settings import Settings

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]
STEPS = ("features", "materialize", "train", "gate", "reload")


def digest(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class StepCache:
    """Last successful run of each step: its input fingerprint and its output."""

    path: Path
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> StepCache:
        try:
            return cls(path, json.loads(path.read_text()))
        except (FileNotFoundError, ValueError):
            return cls(path)

    def hit(self, step: str, key: str) -> dict[str, Any] | None:
        entry = self.entries.get(step)
        return entry["output"] if entry and entry["key"] == key else None

    def store(self, step: str, key: str, output: dict[str, Any]) -> None:
        self.entries[step] = {"key": key, "output": output, "at": datetime.now(UTC).isoformat()}
        atomic.write_text(self.path, json.dumps(self.entries, indent=2, default=str))


class Pipeline:
    def __init__(self, settings: Settings, as_of: datetime, reason: str, progress: Progress | None) -> None:
        self.settings = settings
        self.as_of = as_of
        self.reason = reason
        self.cache = StepCache.load(settings.monitoring_dir / "steps.json")
        self.progress = progress or (lambda *_: None)
        self.ran: list[str] = []
        self.skipped: list[str] = []

    def step(
        self,
        name: str,
        key: str,
        run: Callable[[], dict[str, Any]],
        still_valid: Callable[[dict], bool] = lambda _: True,
        seed: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Run ``run`` unless its last run had the same input key (or ``seed`` says the output
        already exists for these inputs, e.g. tables published by ``fsml features build``)."""
        self.progress(name, STEPS.index(name), len(STEPS))
        cached = self.cache.hit(name, key) or seed
        if cached is not None and still_valid(cached):
            self.skipped.append(name)
            log.info("retrain: %s skipped, its inputs did not change", name)
            return cached
        output = run()
        self.cache.store(name, key, output)
        self.ran.append(name)
        return output

    def features(self) -> dict[str, Any]:
        """The offline tables brought up to date with the pushed rows (an incremental build:
        only what is new is computed, and nothing when nothing is)."""
        from fsml.features.build import NothingToBuild, build_features

        self.progress("features", STEPS.index("features"), len(STEPS))
        try:
            result = build_features(self.settings, until=self.as_of)
        except NothingToBuild:  # the repo's tables are produced outside fsml
            self.skipped.append("features")
            return {"managed": False}
        (self.skipped if result.mode == "unchanged" else self.ran).append("features")
        return {"managed": True, "version": published_version(result.directory)}

    def materialize(self, features: dict[str, Any]) -> dict[str, Any]:
        from fsml.serving.materialize import materialize, missing_views

        key = digest(features, self.as_of)
        return self.step(
            "materialize",
            key,
            lambda: materialize(self.settings, end=self.as_of, incremental=True).summary(),
            # a store that lost its rows since (flushed, replaced) is refilled even on a cache hit
            still_valid=lambda output: not missing_views(self.settings, output.get("views", [])),
        )

    def train(self, features: dict[str, Any]) -> dict[str, Any]:
        from fsml.training.pipeline import train

        from fsml.featurestore import describe_service, open_store

        spec = describe_service(open_store(self.settings), self.settings.feature_service)
        inputs = [table_digest(p) for p in sorted(spec.offline_paths.values())]
        labels = [table_digest(p) for p in (spec.label_source.path, spec.label_source.labels_path) if p]
        key = digest(
            inputs,
            labels,
            self.as_of,
            code_fingerprint(),
            feature_repo_fingerprint(self.settings.feature_repo),
            {k: v for k, v in self.settings.model_dump().items() if k.endswith("_days") or k in TRAIN_FIELDS},
        )

        def run() -> dict[str, Any]:
            outcome = train(self.settings, as_of=self.as_of, reason=self.reason)
            return {
                "run_id": outcome.registered.run_id,
                "version": outcome.registered.version,
                "metrics": outcome.trained.bundle.card.metrics,
            }

        return self.step("train", key, run, self._version_exists)

    def _version_exists(self, output: dict[str, Any]) -> bool:
        client = registry.client(self.settings)
        name = self.settings.model_name(self.settings.feature_service)
        try:
            registry.get_version(client, name, output["version"])
            return True
        except FsmlError:
            return False

    def gate(self, trained: dict[str, Any]) -> dict[str, Any]:
        from fsml.training.promote import promote

        client = registry.client(self.settings)
        champion = registry.version_by_alias(
            client, self.settings.model_name(self.settings.feature_service), registry.CHAMPION
        )
        key = digest(
            trained["version"],
            champion.version if champion else None,
            self.as_of,
            self.settings.promotion_margin,
        )
        return self.step(
            "gate",
            key,
            lambda: promote(self.settings, version=trained["version"], as_of=self.as_of).summary(),
        )

    def reload(self, decision: dict[str, Any]) -> dict[str, Any]:
        key = digest(decision["champion_version"], self.settings.service_url)
        return self.step("reload", key, lambda: notify_service(self.settings))


TRAIN_FIELDS = {
    "seed",
    "num_threads",
    "num_boost_round",
    "early_stopping_rounds",
    "learning_rate",
    "num_leaves",
    "min_data_in_leaf",
    "feature_service",
}


def published_version(directory: Path) -> str:
    """The published tables' version: the build that made them."""
    try:
        manifest = json.loads((directory / "manifest.json").read_text())
    except (FileNotFoundError, ValueError):
        return ""
    return digest(manifest.get("created"), manifest.get("fingerprint"))


def notify_service(settings: Settings) -> dict[str, Any]:
    """Ask the service to load the champion now; without a URL its workers follow the alias."""
    if not settings.service_url:
        return {
            "notified": False,
            "note": "no FSML_SERVICE_URL: workers pick up the champion alias by polling",
        }
    key = settings.api_key.get_secret_value() if settings.api_key else ""
    try:
        reply = httpx.post(
            f"{settings.service_url.rstrip('/')}/admin/reload",
            params={"feature_service": settings.feature_service},
            headers={"X-API-Key": key},
            timeout=60,
        )
    except httpx.HTTPError as exc:
        raise FsmlError(f"could not reach the service at {settings.service_url}: {exc}") from None
    if reply.status_code == 404:  # the service there hosts other models
        return {"notified": False, "note": f"{settings.service_url} does not serve {settings.feature_service}"}
    if reply.status_code != 200:
        raise FsmlError(f"the service refused to reload ({reply.status_code}): {reply.text[:200]}")
    return {"notified": True, **reply.json()}


def retrain(
    settings: Settings,
    reason: str = "manual",
    automatic: bool = False,
    as_of: datetime | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Run the pipeline once. Automatic triggers respect the cooldown and a data-quality
    incident's hold; manual requests run anyway, with a warning during an incident. Both wait for
    no one: if a retraining is running, this one is refused."""
    now = datetime.now(UTC)
    state = State.load(settings)
    hold = held(settings)
    if hold and automatic:
        outcome = {"started": False, "reason": reason, "skipped": f"held: {hold}"}
        record(settings, {"event": "retrain", **outcome})
        return outcome
    warning = None
    if hold:
        warning = f"{hold}: the new model may learn the break; fix the data first if you can"
        log.warning("retraining during a %s", warning)
        record(settings, {"event": "retrain", "reason": reason, "warning": warning})
    until = state.cooldown_until(settings)
    if automatic and until is not None and now < until:
        outcome = {
            "started": False,
            "reason": reason,
            "skipped": f"cooldown until {until.isoformat()}",
        }
        record(settings, {"event": "retrain", **outcome})
        return outcome
    began = time.perf_counter()
    as_of = (as_of or now).replace(minute=0, second=0, microsecond=0)
    with retrain_lock(settings):
        record(settings, {"event": "retrain", "started": True, "reason": reason, "as_of": as_of})
        pipeline = Pipeline(settings, as_of, reason, progress)
        try:
            features = pipeline.features()
            pipeline.materialize(features)
            trained = pipeline.train(features)
            decision = pipeline.gate(trained)
            reload = pipeline.reload(decision)
        except Exception as exc:
            replace(
                State.load(settings), last_retrain_at=now.isoformat(), last_reason=reason, last_outcome=f"failed: {exc}"
            ).save(settings)
            record(
                settings,
                {"event": "retrain", "outcome": "failed", "reason": reason, "error": str(exc)},
            )
            raise FsmlError(f"retraining failed, nothing was promoted: {exc}") from exc
    outcome = {
        "started": True,
        "reason": reason,
        "as_of": as_of.isoformat(),
        "promoted": decision["promoted"],
        "champion_version": decision["champion_version"],
        "challenger_version": decision["challenger_version"],
        "scores": decision["scores"],
        "decision": decision["reason"],
        "run_id": trained["run_id"],
        "reload": reload,
        "steps_run": pipeline.ran,
        "steps_skipped": pipeline.skipped,
        "seconds": round(time.perf_counter() - began, 1),
    }
    if warning:
        outcome["warning"] = warning
    replace(
        State.load(settings),
        last_retrain_at=now.isoformat(),
        last_reason=reason,
        last_outcome="promoted" if decision["promoted"] else "kept",
        last_success_at=now.isoformat(),
    ).save(settings)
    record(
        settings,
        {
            "event": "retrain",
            "outcome": "done",
            **{k: outcome[k] for k in ("promoted", "champion_version", "steps_skipped")},
        },
    )
    return outcome
