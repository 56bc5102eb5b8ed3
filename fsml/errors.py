"""Errors that reach the user as one line and a non-zero exit code."""

from __future__ import annotations


class FsmlError(Exception):
    """A problem the user can fix: bad input, missing data, an unknown name.

    The CLI prints ``error: <message>`` and exits with ``exit_code``; nothing else is shown.
    """

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ValidationFailed(FsmlError):
    """Data did not pass its checks; ``failures`` names each failing check."""

    def __init__(self, what: str, failures: list[str]) -> None:
        self.failures = failures
        super().__init__(f"{what} rejected, {len(failures)} failing check(s): " + "; ".join(failures))


class OnDemandFailed(FsmlError):
    """A user's on-demand feature view function raised (or returned something unusable),
    online or offline; the message names the view."""

    def __init__(self, view: str, exc: BaseException) -> None:
        self.view = view
        super().__init__(f"on-demand feature view {view!r} failed: {type(exc).__name__}: {exc}")
