"""Prometheus metrics of the service.

With several worker processes, ``fsml serve`` sets ``PROMETHEUS_MULTIPROC_DIR`` and
``FSML_METRICS_MULTIPROCESS`` and ``/metrics`` aggregates every worker's files
(prometheus-client's multiprocess mode). Otherwise values live in memory: importing
``feast.metrics`` sets ``PROMETHEUS_MULTIPROC_DIR`` for the whole process, which would make
every counter increment go through an mmap'd file with a process check (13% of a request's CPU).
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from fsml.serving.observability import RequestIds, WorkersProcessCollector, log_access
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

from fsml.logjson import REQUEST_ID

LATENCY_BUCKETS = (
    0.0002,
    0.0005,
    0.001,
    0.0015,
    0.002,
    0.003,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    1.0,
)
PUSH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
ROUTES = {
    "/v1/predict",
    "/v1/predict/batch",
    "/v1/model",
    "/v1/models",
    "/healthz",
    "/readyz",
    "/metrics",
    "/admin/reload",
}


MULTIPROCESS = "FSML_METRICS_MULTIPROCESS"
SCORE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 1.0)
# Age of the online row a feature came from: minutes to the daily snapshots' TTLs and beyond.
AGE_BUCKETS = (60, 300, 900, 3600, 6 * 3600, 86400, 2 * 86400, 7 * 86400, 30 * 86400)
AGE_SAMPLE = 16


class Metrics:
    def __init__(self) -> None:
        from prometheus_client import values

        # Metrics take the value class current at their construction.
        values.ValueClass = values.get_value_class() if os.environ.get(MULTIPROCESS) else values.MutexValue
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("fsml_requests", "HTTP requests", ["route", "method", "status"], registry=r)
        self.latency = Histogram(
            "fsml_request_latency_seconds",
            "Request latency",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        # "model" is the feature service: one process may host several models
        self.predictions = Counter("fsml_predictions", "Rows scored, by decision", ["model", "decision"], registry=r)
        self.scores = Histogram("fsml_score", "Scores given", ["model"], buckets=SCORE_BUCKETS, registry=r)
        self.feature_age = Histogram(
            "fsml_feature_age_seconds",
            f"Age of the online feature rows read, by feature view (freshness; one request in {AGE_SAMPLE})",
            ["view"],
            buckets=AGE_BUCKETS,
            registry=r,
        )
        self.missing = Counter(
            "fsml_missing_features", "Model features missing at scoring", ["model", "feature"], registry=r
        )
        self.stale = Counter(
            "fsml_stale_features", "Model features older than their TTL", ["model", "feature"], registry=r
        )
        self.all_missing = Counter(
            "fsml_all_features_missing", "Rows whose stored features were all missing or stale", ["model"], registry=r
        )
        self.on_demand_errors = Counter(
            "fsml_on_demand_errors", "Requests failed in an on-demand view's function", ["model", "view"], registry=r
        )
        self.online_errors = Counter("fsml_online_store_errors", "Failed online store reads", registry=r)
        self.reloads = Counter("fsml_model_reloads", "Model swaps", ["outcome"], registry=r)
        self.log_dropped = Counter("fsml_prediction_log_dropped", "Log rows dropped: the disk fell behind", registry=r)
        self.log_dead_letter = Counter(
            "fsml_prediction_log_dead_letter",
            "Log rows that could not be written, kept in the dead-letter file",
            registry=r,
        )
        self.push_rows = Counter("fsml_pushed_rows", "Pushed rows accepted", ["source"], registry=r)
        self.push_duplicates = Counter("fsml_push_duplicates", "Pushed rows already known", ["source"], registry=r)
        self.push_rejects = Counter("fsml_push_rejected_rows", "Pushed rows refused (bad or unwritable)", ["source"],
                                    registry=r)  # fmt: skip
        self.push_latency = Histogram(
            "fsml_push_latency_seconds", "Push time until durable", ["source"], buckets=PUSH_BUCKETS, registry=r
        )
        self.newest_event = Gauge(
            "fsml_push_newest_event_timestamp_seconds", "Event time of the newest pushed row", ["source"],
            registry=r, multiprocess_mode="max",
        )  # fmt: skip
        self.newest_age = Gauge(
            "fsml_push_newest_event_age_seconds", "Age of the newest pushed row (freshness)", ["source"],
            registry=r, multiprocess_mode="min",
        )  # fmt: skip
        self._newest: dict[str, float] = {}
        self.model_version = Gauge(
            "fsml_model_version",
            "Version of the served model",
            ["name"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self.challenger_rows = Counter(
            "fsml_challenger_rows", "Rows the challenger scored", ["model", "route"], registry=r
        )
        self.challenger_dropped = Counter(
            "fsml_challenger_dropped", "Shadow rows dropped: the challenger fell behind", ["model"], registry=r
        )
        self.challenger_errors = Counter(
            "fsml_challenger_errors", "Rows the challenger failed on", ["model"], registry=r
        )
        self.canary_rollbacks = Counter("fsml_canary_rollbacks", "Canaries rolled back", ["model"], registry=r)
        self.model_loaded = Gauge(
            "fsml_model_loaded", "1 when a model is loaded and served", registry=r, multiprocess_mode="livemin"
        )
        if not os.environ.get(MULTIPROCESS):
            ProcessCollector(registry=r)

        self._children: dict[tuple, Any] = {}
        self._age_ticks = itertools.count()

    def sample_age(self) -> bool:
        """Feature ages are observed for one request in AGE_SAMPLE: a distribution needs no
        more, and a histogram per feature view per request would add 4% to a request's CPU."""
        return next(self._age_ticks) % AGE_SAMPLE == 0

    def count(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count and time a request; label children are looked up once (labels() costs µs)."""
        key = (route, method, status)
        children = self._children.get(key)
        if children is None:
            children = (self.requests.labels(route, method, str(status)), self.latency.labels(route))
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    def pushed(self, source: str, accepted: int, duplicates: int, seconds: float, newest_us: int | None) -> None:
        self.child(self.push_rows, source).inc(accepted)
        self.child(self.push_duplicates, source).inc(duplicates)
        self.child(self.push_latency, source).observe(seconds)
        if newest_us is not None and newest_us / 1e6 > self._newest.get(source, 0.0):
            self._newest[source] = newest_us / 1e6
            self.child(self.newest_event, source).set(newest_us / 1e6)
            self._ages()

    def push_rejected(self, source: str, rows: int) -> None:
        self.child(self.push_rejects, source).inc(rows)

    def _ages(self) -> None:
        now = time.time()
        for source, newest in self._newest.items():
            self.child(self.newest_age, source).set(max(0.0, now - newest))

    def render(self) -> tuple[bytes, str]:
        self._ages()
        if os.environ.get(MULTIPROCESS):
            from prometheus_client import multiprocess

            merged = CollectorRegistry()
            multiprocess.MultiProcessCollector(merged)
            merged.register(WorkersProcessCollector(Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])))
            return generate_latest(merged), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


ASGIApp = Callable[[MutableMapping[str, Any], Callable, Callable], Awaitable[None]]


class MetricsMiddleware:
    """Counts and times every HTTP request by route and status, gives it a request id (taken
    from ``X-Request-ID`` or new, returned on the response, in every log line of the request)
    and writes the access log line (plain ASGI: a few µs each)."""

    def __init__(
        self, app: ASGIApp, metrics: Metrics, routes: set[str] | frozenset[str] = frozenset(), access_log: bool = True
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = ROUTES | set(routes)  # paths counted by name; any other is "other"
        self.access_log = access_log
        self.request_id = RequestIds()

    async def __call__(self, scope: MutableMapping[str, Any], receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [500]
        rid = self.request_id(scope["headers"])
        header = (b"x-request-id", rid.encode())
        token = REQUEST_ID.set(rid)

        async def record_status(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            path = scope["path"]
            route = path if path in self.routes else "/v1/push" if path.startswith("/v1/push/") else "other"
            elapsed = time.perf_counter() - start
            self.metrics.count(route, scope["method"], status[0], elapsed)
            if self.access_log:
                log_access(rid, scope["method"], path, route, status[0], elapsed)
            REQUEST_ID.reset(token)
