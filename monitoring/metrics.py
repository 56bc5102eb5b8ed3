"""Prometheus metrics of the monitoring loop: drift verdicts, performance, retraining outcomes.

They are read, at each scrape, from the records the loop already keeps under the environment's
monitoring folder (``history.jsonl`` of monitor runs, ``triggers.jsonl`` of retrainings and
``state.json``), so they are the same whether the loop runs as ``fsml monitor watch`` (which
serves them with ``--metrics-port``) or as a Kubernetes CronJob next to a small
``fsml monitor metrics --port`` exporter on the same volume, and they survive restarts.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from fsml.settings import Settings

log = logging.getLogger(__name__)

RETRAIN_OUTCOMES = ("promoted", "kept", "failed", "skipped")


def _lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:  # a line cut by a crash: the others still count
            continue
    return out


def _stamp(value: str | None) -> float:
    return datetime.fromisoformat(value).timestamp() if value else 0.0


def retrain_outcome(event: dict[str, Any]) -> str | None:
    if event.get("event") != "retrain":
        return None
    if event.get("skipped"):
        return "skipped"
    if event.get("outcome") == "failed":
        return "failed"
    if event.get("outcome") == "done":
        return "promoted" if event.get("promoted") else "kept"
    return None


class MonitorCollector:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def collect(self) -> Iterator[Metric]:
        """Every model of the environment: each keeps its records in a folder of its own."""
        root = self.settings.home / "monitoring" / self.settings.env
        folders = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
        yield from self._monitor([run for folder in folders for run in _lines(folder / "history.jsonl")])
        yield from self._retraining({self.settings.model_name(f.name): f for f in folders})

    def _monitor(self, history: list[dict[str, Any]]) -> Iterator[Metric]:
        labels = ["model"]
        last_run = GaugeMetricFamily(
            "fsml_monitor_last_run_timestamp_seconds", "When the monitor last judged", labels=labels
        )
        detected = GaugeMetricFamily("fsml_drift_detected", "1 when the last monitor run found drift", labels=labels)
        drifted = GaugeMetricFamily("fsml_drifted_features", "Features that drifted in the last run", labels=labels)
        feature = GaugeMetricFamily(
            "fsml_feature_drifted", "1 for each feature that drifted", labels=["model", "feature"]
        )
        score = GaugeMetricFamily(
            "fsml_score_drift_distance", "Score drift, in reference standard deviations", labels=labels
        )
        rows = GaugeMetricFamily("fsml_monitor_window_rows", "Rows in the monitored window", labels=labels)
        pr_auc = GaugeMetricFamily(
            "fsml_monitor_pr_auc", "PR-AUC of logged predictions on matured labels", labels=labels
        )
        degraded = GaugeMetricFamily("fsml_performance_degraded", "1 when PR-AUC is below its floor", labels=labels)
        version = GaugeMetricFamily("fsml_monitored_model_version", "Champion version judged last", labels=labels)
        causes = GaugeMetricFamily(
            "fsml_monitor_cause", "1 for each cause the last monitor run named", labels=["model", "cause"]
        )
        latest: dict[str, dict[str, Any]] = {}
        for run in history:  # the last run of each model
            latest[run.get("model", {}).get("name", "")] = run
        for name, run in latest.items():
            last_run.add_metric([name], _stamp(run.get("as_of")))
            detected.add_metric([name], float(bool(run.get("drift_detected"))))
            drifted.add_metric([name], float(len(run.get("drifted_features") or [])))
            for column in run.get("drifted_features") or []:
                feature.add_metric([name, column], 1.0)
            score.add_metric([name], float(run.get("score_drift", {}).get("distance") or 0.0))
            rows.add_metric([name], float(run.get("window", {}).get("rows") or 0))
            performance = run.get("performance", {})
            if isinstance(performance.get("pr_auc"), int | float):
                pr_auc.add_metric([name], float(performance["pr_auc"]))
            degraded.add_metric([name], float(bool(performance.get("degraded"))))
            version.add_metric([name], float(run.get("model", {}).get("version") or 0))
            for cause in ("data_quality", "distribution", "prediction", "concept"):
                causes.add_metric([name, cause], float(cause in (run.get("causes") or [])))
        yield from (last_run, detected, drifted, feature, score, rows, pr_auc, degraded, version, causes)

    def _retraining(self, folders: dict[str, Path]) -> Iterator[Metric]:
        runs = CounterMetricFamily("fsml_retrain_runs", "Retrainings by outcome", labels=["model", "outcome"])
        success = GaugeMetricFamily(
            "fsml_retrain_last_success_timestamp_seconds", "Last retraining that finished", labels=["model"]
        )
        failed = GaugeMetricFamily("fsml_retrain_last_failed", "1 when the last retraining failed", labels=["model"])
        incident = GaugeMetricFamily(
            "fsml_data_quality_incident", "1 while a data-quality incident holds retraining", labels=["model"]
        )
        for name, folder in folders.items():
            counts = Counter(o for e in _lines(folder / "triggers.jsonl") if (o := retrain_outcome(e)))
            for outcome in RETRAIN_OUTCOMES:
                runs.add_metric([name, outcome], float(counts[outcome]))
            path = folder / "state.json"
            state = json.loads(path.read_text()) if path.exists() else {}
            success.add_metric([name], _stamp(state.get("last_success_at")))
            failed.add_metric([name], float(str(state.get("last_outcome") or "").startswith("failed")))
            incident.add_metric([name], float(bool(state.get("incident_since"))))
        yield from (runs, success, failed, incident)


def registry(settings: Settings) -> CollectorRegistry:
    out = CollectorRegistry()
    out.register(MonitorCollector(settings))
    return out


def exposition(settings: Settings) -> str:
    return generate_latest(registry(settings)).decode()


def serve(settings: Settings, port: int, host: str = "0.0.0.0") -> threading.Thread:
    """Serve the metrics over HTTP from a daemon thread (prometheus-client's own server)."""
    server, thread = start_http_server(port, addr=host, registry=registry(settings))
    log.info("monitor metrics on http://%s:%d/metrics", host, port)
    return thread
