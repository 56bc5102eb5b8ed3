"""Request ids, the access log and process metrics, in the plain-ASGI style of the metrics.

``X-Request-ID`` is taken from the request when it is a sane token (a proxy or the caller set
it) or made up, returned on the response and put in every log line written while the request
runs. The access log is one JSON line per request (``FSML_ACCESS_LOG=false`` turns it off, as
the benchmarks do). Nothing here is Starlette's ``BaseHTTPMiddleware``, whose task per request
costs more than the whole prediction route.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import ProcessCollector
from prometheus_client.metrics_core import Metric

access_log = logging.getLogger("fsml.access")

HEADER = b"x-request-id"
_SANE = re.compile(rb"[A-Za-z0-9._:-]{1,128}")


class RequestIds:
    """The caller's id when it is a short token, else a new one: a random prefix drawn when the
    worker starts and a counter (unique across workers and restarts; a third of the cost of
    16 random bytes a request)."""

    def __init__(self) -> None:
        self.prefix = os.urandom(8).hex()
        self.counter = itertools.count(1)

    def __call__(self, headers: list[tuple[bytes, bytes]]) -> str:
        for name, value in headers:
            if name == HEADER:
                if _SANE.fullmatch(value):
                    return value.decode()
                break
        return f"{self.prefix}{next(self.counter):08x}"


def log_access(request: str, method: str, path: str, route: str, status: int, seconds: float) -> None:
    access_log.info(
        "%s %s %d",
        method,
        path,
        status,
        extra={
            "request_id": request,
            "method": method,
            "path": path,
            "route": route,
            "status": status,
            "latency_ms": round(seconds * 1000, 3),
        },
    )


class WorkersProcessCollector:
    """Process metrics (CPU, memory, file descriptors) of every worker, labelled by ``pid``.

    In prometheus-client's multiprocess mode custom collectors are per process, so ``/metrics``
    would describe only the worker that answered; the live workers are those with files in the
    multiprocess directory, and ``/proc`` has the figures of each.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def pids(self) -> list[int]:
        found = {int(m[1]) for p in self.directory.glob("*.db") if (m := re.search(r"_(\d+)\.db$", p.name))}
        found.add(os.getpid())
        return sorted(pid for pid in found if Path(f"/proc/{pid}").exists())

    def collect(self) -> Iterator[Metric]:
        merged: dict[str, Metric] = {}
        for pid in self.pids():
            for family in ProcessCollector(pid=lambda pid=pid: pid, registry=None).collect():
                target = merged.setdefault(family.name, Metric(family.name, family.documentation, family.type))
                for sample in family.samples:
                    target.add_sample(sample.name, {**sample.labels, "pid": str(pid)}, sample.value)
        yield from merged.values()
