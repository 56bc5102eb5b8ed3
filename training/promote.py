"""``fsml promote``: the challenger replaces the champion only if it is at least as good on the
same most recent labelled window, and on the live rows both scored (shadow or canary) once their
labels matured.

Both models are scored on identical entity rows (the newest ``promotion_window_days`` of labels
known at the as-of time), each with features from its own feature service. The first model has
no champion to beat and must pass absolute floors instead. The decision, both scores and the
window are recorded as an MLflow run and as tags on the challenger's version.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from fsml.training.dataset import entity_rows, labelled_features
from fsml.training.live import live_scores, live_verdict
from sklearn.metrics import average_precision_score, roc_auc_score

from fsml import registry
from fsml.errors import FsmlError
from fsml.featurestore import describe_service, open_store
from fsml.model import ModelBundle
from fsml.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Score:
    version: str
    pr_auc: float
    roc_auc: float


@dataclass
class Decision:
    promoted: bool
    reason: str
    challenger_version: str
    champion_version: str | None  # the champion after the decision
    previous_champion: str | None
    scores: dict[str, Any] = field(default_factory=dict)
    window: dict[str, Any] = field(default_factory=dict)
    forced: bool = False

    def summary(self) -> dict[str, Any]:
        return asdict(self)


def decide(
    challenger: Score,
    champion: Score | None,
    margin: float,
    min_pr_auc: float,
    min_roc_auc: float,
    force: bool,
) -> tuple[bool, str]:
    """The promotion rule, free of I/O so both outcomes are easy to test."""
    if champion is not None and champion.version == challenger.version:
        return False, f"version {challenger.version} is already the champion"
    if force:
        return True, "forced with --force"
    if math.isnan(challenger.pr_auc):
        return False, "no positive labels in the evaluation window: nothing to compare"
    if champion is None:
        ok = challenger.pr_auc >= min_pr_auc and challenger.roc_auc >= min_roc_auc
        verdict = "passes" if ok else "fails"
        return ok, (
            f"first champion: PR-AUC {challenger.pr_auc:.4f} (floor {min_pr_auc}) and ROC-AUC "
            f"{challenger.roc_auc:.4f} (floor {min_roc_auc}) {verdict} the floors"
        )
    needed = champion.pr_auc + margin
    ok = challenger.pr_auc >= needed
    relation = ">=" if ok else "<"
    return ok, (
        f"challenger v{challenger.version} PR-AUC {challenger.pr_auc:.4f} {relation} champion "
        f"v{champion.version} {champion.pr_auc:.4f} + margin {margin}"
    )


def promote(
    settings: Settings,
    version: str | None = None,
    force: bool = False,
    as_of: datetime | None = None,
    feature_service: str | None = None,
) -> Decision:
    client = registry.client(settings, create=False)
    name = settings.model_name(feature_service or settings.feature_service)
    challenger_mv = _challenger(client, name, version)
    champion_mv = registry.version_by_alias(client, name, registry.CHAMPION)
    if champion_mv is not None and champion_mv.version == challenger_mv.version:
        current = str(champion_mv.version)
        return Decision(False, f"version {current} is already the champion", current, current, current)
    canary = challenger_mv.tags.get(registry.CANARY_ROLLED_BACK)
    if canary and not force:
        current = str(champion_mv.version) if champion_mv else None
        reason = f"v{challenger_mv.version} was rolled back during its canary ({canary}); --force to promote anyway"
        return Decision(False, reason, str(challenger_mv.version), current, current)
    challenger = registry.load_bundle(challenger_mv)
    champion = registry.load_bundle(champion_mv) if champion_mv else None
    end = as_of or datetime.now(UTC).replace(microsecond=0)
    frames, window = _evaluation_window(settings, [m for m in (challenger, champion) if m], end)
    scores = {
        "challenger": _score(challenger, frames),
        "champion": _score(champion, frames) if champion else None,
    }
    promoted, reason = decide(
        scores["challenger"],
        scores["champion"],
        settings.promotion_margin,
        settings.min_pr_auc,
        settings.min_roc_auc,
        force,
    )
    live = None
    if champion is not None:
        source = describe_service(open_store(settings), challenger.card.feature_service).label_source
        live = live_scores(
            settings.for_service(challenger.card.feature_service).challenger_log_dir,
            source,
            challenger.version,
            champion.version,
            end,
            settings.min_labelled_positives,
        )
        if not force:
            live_ok, live_reason = live_verdict(live, settings.promotion_margin)
            promoted, reason = promoted and live_ok, f"offline: {reason}; {live_reason}"
    decision = Decision(
        promoted=promoted,
        reason=reason,
        challenger_version=challenger.version,
        champion_version=challenger.version if promoted else (champion.version if champion else None),
        previous_champion=champion.version if champion else None,
        scores={k: asdict(v) if v else None for k, v in scores.items()} | {"live": live},
        window=window,
        forced=force,
    )
    _record(settings, client, name, decision)
    log.info("promotion of %s v%s: %s", name, challenger.version, reason)
    return decision


def _challenger(client, name: str, version: str | None):
    if version is not None:
        return registry.get_version(client, name, version)
    found = registry.version_by_alias(client, name, registry.CHALLENGER)
    if found is None:
        raise FsmlError(f"model {name!r} has no challenger: train one or pass --version")
    return found


def _evaluation_window(
    settings: Settings, models: list[ModelBundle], end: datetime
) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    """Feature frames per feature service over the same most recent labelled rows."""
    store = open_store(settings)
    start = end - timedelta(days=settings.promotion_window_days)
    services = list(dict.fromkeys(m.card.feature_service for m in models))
    specs = {s: describe_service(store, s) for s in services}
    entities = entity_rows(specs[services[0]], start, end, end)
    if entities.empty:
        raise FsmlError(f"empty time window: no labelled rows between {start.isoformat()} and {end.isoformat()}")
    frames = {s: labelled_features(store, spec, entities) for s, spec in specs.items()}
    window = {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "rows": len(entities),
        "positives": int(entities["label"].sum()),
    }
    return frames, window


def _score(model: ModelBundle, frames: dict[str, pd.DataFrame]) -> Score:
    frame = frames[model.card.feature_service]
    y = frame["label"].to_numpy(np.int64)
    score = model.predict_matrix(model.encoder.frame(frame), num_threads=2)
    both = len(np.unique(y)) == 2
    return Score(
        version=model.version,
        pr_auc=float(average_precision_score(y, score)) if both else math.nan,
        roc_auc=float(roc_auc_score(y, score)) if both else math.nan,
    )


def _record(settings: Settings, client, name: str, decision: Decision) -> None:
    """Log the decision as a run, then move the aliases; the run fails if the move fails."""
    run = client.create_run(
        registry.experiment_id(settings, client),
        tags={
            "mlflow.runName": f"promote-{name}-v{decision.challenger_version}",
            "fsml.kind": "promotion",
            "fsml.decision": "promoted" if decision.promoted else "kept",
            "fsml.reason": decision.reason,
            "fsml.forced": str(decision.forced).lower(),
            "feast.project": settings.feast_project,
            **registry.owner_tags(),
        },
    )
    run_id = run.info.run_id
    client.log_param(run_id, "challenger_version", decision.challenger_version)
    client.log_param(run_id, "champion_version", decision.previous_champion or "none")
    client.log_param(run_id, "margin", settings.promotion_margin)
    for key, value in decision.window.items():
        client.log_param(run_id, f"window_{key}", value)
    for role, score in decision.scores.items():
        for metric in ("pr_auc", "roc_auc"):
            if role != "live" and score and not math.isnan(score[metric]):
                client.log_metric(run_id, f"{role}_{metric}", score[metric])
    live = decision.scores.get("live") or {}
    for role in ("challenger", "champion"):
        if live.get("status") == "measured":
            client.log_metric(run_id, f"live_{role}_pr_auc", live[role]["pr_auc"])
    client.log_param(run_id, "live_rows", live.get("labelled_rows", 0))
    status = "FINISHED"
    try:
        tags = {
            "fsml.promotion.decision": "promoted" if decision.promoted else "kept",
            "fsml.promotion.reason": decision.reason,
            "fsml.promotion.run_id": run_id,
        }
        for key, value in tags.items():
            client.set_model_version_tag(name, decision.challenger_version, key, value)
        if decision.promoted:
            registry.set_champion(client, name, decision.challenger_version, f"promoted: {decision.reason}")
            pending = registry.version_by_alias(client, name, registry.CHALLENGER)
            if pending is not None and str(pending.version) == decision.challenger_version:
                client.delete_registered_model_alias(name, registry.CHALLENGER)
    except BaseException:  # SIGTERM too (fsml.signals)
        status = "FAILED"
        raise
    finally:
        client.set_terminated(run_id, status=status)
