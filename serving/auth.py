"""API keys for the routes that change the service: fail closed, compare in constant time.

``require_key(*names)`` builds a FastAPI dependency that accepts the ``X-API-Key`` header when it
matches one of the named settings (``api_key``, or a push-only key another route group adds). A
setting that is unset (an empty or blank value counts as unset) accepts nothing, so without any
key the routes answer 401 in every environment. The header is compared as bytes: Starlette
decodes header values as Latin-1, so a non-ASCII value arrives as text that
``hmac.compare_digest`` refuses (a 500); its original bytes compare fine and simply do not match.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import HTTPException, Request, Security
from fastapi.security import APIKeyHeader
from pydantic import SecretStr

HEADER = "X-API-Key"
# The header as an API-key security scheme: the OpenAPI document and Swagger UI's "Authorize" know it.
SCHEME = APIKeyHeader(name=HEADER, auto_error=False, description="The route group's key (FSML_API_KEY for /admin).")


def configured_keys(settings: object, names: tuple[str, ...]) -> list[bytes]:
    """The UTF-8 bytes of each named key that is set."""
    keys = []
    for name in names:
        value = getattr(settings, name, None)
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if isinstance(value, str) and value.strip():
            keys.append(value.encode("utf-8"))
    return keys


def key_matches(offered: str | None, keys: list[bytes]) -> bool:
    """Constant-time comparison against every key (no early exit that would time the match)."""
    if offered is None:
        return False
    raw = offered.encode("latin-1", errors="replace")  # the header's bytes as they came
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(raw, key)
    return matched


def require_key(*names: str) -> Callable[..., Awaitable[None]]:
    """A dependency: 401 unless ``X-API-Key`` matches one of the settings ``names``."""
    if not names:
        raise ValueError("require_key needs at least one setting name")
    label = " or ".join(f"FSML_{n.upper()}" for n in names)

    async def check(request: Request, x_api_key: Annotated[str | None, Security(SCHEME)] = None) -> None:
        keys = configured_keys(request.app.state.service.settings, names)
        if not keys:
            raise HTTPException(401, detail=f"these routes are closed: set {label}")
        if not key_matches(x_api_key, keys):
            raise HTTPException(401, detail=f"missing or wrong {HEADER}")

    return check
