"""Logs as one JSON object a line, for log collectors (Loki, Elasticsearch, Cloud Logging).

Each line has ``time``, ``level``, ``logger`` and ``message``; inside an HTTP request, the
request id (``fsml.logjson.REQUEST_ID``, set by the serving middleware) comes along, and the
access log adds ``route``, ``method``, ``status`` and ``latency_ms`` through ``extra``.
"""

from __future__ import annotations

import json
import logging
from contextvars import ContextVar
from datetime import UTC, datetime

REQUEST_ID: ContextVar[str | None] = ContextVar("fsml_request_id", default=None)
EXTRA_FIELDS = ("route", "method", "path", "status", "latency_ms", "client")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or REQUEST_ID.get()
        if request_id:
            entry["request_id"] = request_id
        for name in EXTRA_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)
