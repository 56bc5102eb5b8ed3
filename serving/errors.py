"""Error bodies that can always be written, never grow with the input and never show paths."""

from __future__ import annotations

import math
import re
from typing import Any

INT64 = 2**63 - 1
MAX_TEXT = 120  # characters of an echoed string
MAX_ITEMS = 10  # items of an echoed list or object
MAX_DEPTH = 4
MAX_ERRORS = 20  # validation errors listed in one answer

# An absolute path: a slash-led run of at least two segments (``/data/mlflow``), not a URL's path.
_PATH = re.compile(r"(?<![\w:/.])(/[\w.@%+~-]+){2,}/?")


def json_safe(value: Any, depth: int = 0) -> Any:
    """A bounded, JSON-writable excerpt of ``value`` for an error body.

    Errors echo the offending input: a 100 MB string or a list of a million items must not be
    echoed whole, a non-finite number (``1e999``) or an integer past 64 bits cannot be written by
    orjson (FastAPI's own handler fails on the first and answers 500), and a lone surrogate
    cannot be encoded as UTF-8. Empty fields are left out.
    """
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, int):
        return value if -INT64 - 1 <= value <= INT64 else _excerpt(str(value))
    if isinstance(value, str):
        return _excerpt(value)
    if isinstance(value, bytes | bytearray):
        return _excerpt(bytes(value[: MAX_TEXT * 4]).decode("utf-8", errors="replace"))
    if depth >= MAX_DEPTH:
        return "..."
    if isinstance(value, dict):
        items = [(k, v) for k, v in value.items() if v is not None]
        out = {_excerpt(str(k)): json_safe(v, depth + 1) for k, v in items[:MAX_ITEMS]}
        if len(items) > MAX_ITEMS:
            out["..."] = f"{len(items) - MAX_ITEMS} more"
        return out
    if isinstance(value, list | tuple):
        out_list = [json_safe(v, depth + 1) for v in value[:MAX_ITEMS]]
        if len(value) > MAX_ITEMS:
            out_list.append(f"... {len(value) - MAX_ITEMS} more")
        return out_list
    return _excerpt(str(value))


def _excerpt(text: str) -> str:
    if len(text) > MAX_TEXT:
        text = text[:MAX_TEXT] + f"... ({len(text)} characters)"
    if not text.isascii():
        text = text.encode("utf-8", errors="backslashreplace").decode("utf-8")
    return text


def validation_errors(errors: list[dict[str, Any]]) -> list[Any]:
    """The first ``MAX_ERRORS`` validation errors, each JSON-safe and bounded."""
    listed = [json_safe(e, depth=-2) for e in errors[:MAX_ERRORS]]
    if len(errors) > MAX_ERRORS:
        listed.append({"type": "too_many_errors", "loc": ["body"], "msg": f"{len(errors) - MAX_ERRORS} more errors"})
    return listed


def public_reason(reason: str) -> str:
    """A reason fit for an HTTP answer: absolute paths cut to their last part (the log has them
    whole), one line, bounded."""
    line = reason.strip().splitlines()[0] if reason.strip() else ""
    line = _PATH.sub(lambda m: ".../" + m.group(0).rstrip("/").rsplit("/", 1)[-1], line)
    return _excerpt(line)
