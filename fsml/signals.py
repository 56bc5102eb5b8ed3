"""SIGTERM as an exception, so a stopped command unwinds like an interrupted one.

Python's default SIGTERM ends the process at once: no ``finally``, no ``except``. Commands that
write (a training run in MLflow, staged files) then leave their work half-done. With
``terminate_as_exception`` a SIGTERM raises ``Terminated`` in the main thread: temporary files are
removed, an MLflow run ends FAILED, and the CLI prints one ``error:`` line. Like
``KeyboardInterrupt`` it is not an ``Exception``, so a loop's ``except Exception`` does not
swallow it. (``fsml serve`` is unaffected: uvicorn installs its own handlers.)
"""

from __future__ import annotations

import signal
import threading


class Terminated(BaseException):  # noqa: N818  (named like KeyboardInterrupt, its sibling)
    exit_code = 143


def _raise(signum: int, _frame: object) -> None:
    raise Terminated(f"stopped by {signal.Signals(signum).name}")


def terminate_as_exception() -> None:
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise)
