"""Validation errors as JSON that can always be written."""

from __future__ import annotations

import math
from typing import Any


def json_safe(value: Any) -> Any:
    """Errors echo the offending input; a non-finite number (``1e999``) is written as text, and
    empty fields are left out. FastAPI's own handler fails on such input and answers 500."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)
