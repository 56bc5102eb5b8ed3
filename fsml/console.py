"""Terminal output shared by the CLI: logging, progress bars and results.

Logs and progress go to stderr; stdout carries only results, so ``--json`` output stays the last
line of stdout and can be piped.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

err = Console(stderr=True)
out = Console(highlight=False, soft_wrap=True)

_NOISY = ("feast", "mlflow", "alembic", "urllib3", "httpx", "botocore", "ibis", "numexpr")


def setup_logging(verbose: bool = False, json_lines: bool = False) -> None:
    """Rich text for people at a terminal; one JSON object a line for services (``json_lines``)."""
    level = logging.DEBUG if verbose else logging.INFO
    if json_lines:
        from fsml.logjson import JsonFormatter

        handler: logging.Handler = logging.StreamHandler()
        handler.setFormatter(JsonFormatter())
    else:
        handler = RichHandler(console=err, show_path=False, rich_tracebacks=False)
    logging.basicConfig(level=level, format="%(message)s", datefmt="[%X]", handlers=[handler], force=True)
    for name in _NOISY:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.WARNING)
    # MLflow installs its own handler at import; it reads its level from this variable.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "DEBUG" if verbose else "WARNING")
    # Libraries' deprecation notices go through logging, where they are quiet unless verbose.
    # (Feast re-enables them with warnings.simplefilter at import, so a filter would not hold.)
    logging.captureWarnings(True)
    logging.getLogger("py.warnings").setLevel(logging.DEBUG if verbose else logging.ERROR)


@contextlib.contextmanager
def steps(title: str, total: int) -> Iterator[Callable[[str], None]]:
    """A progress bar over ``total`` named steps; call the yielded function as each one starts."""
    began = time.perf_counter()
    # Transient: the live bar disappears, so a failure leaves only its one-line error.
    with Progress(*_columns(), console=err, transient=True) as progress:
        task = progress.add_task(title, total=total)
        started = [False]

        def start(step: str) -> None:
            progress.update(task, description=f"{title}: {step}", advance=1 if started[0] else 0)
            started[0] = True

        yield start
    err.print(f"[green]✓[/green] {title} done in {time.perf_counter() - began:.1f} s", highlight=False)


@contextlib.contextmanager
def chunk_progress(title: str) -> Iterator[Callable[[str, int, int], None]]:
    """A progress bar for work that reports ``(what, done, total)`` as it goes."""
    began = time.perf_counter()
    with Progress(*_columns(), console=err, transient=True) as progress:
        task = progress.add_task(title, total=None)

        def update(what: str, done: int, total: int) -> None:
            progress.update(task, description=f"{title}: {what}", completed=done, total=total)

        yield update
    err.print(f"[green]✓[/green] {title} done in {time.perf_counter() - began:.1f} s", highlight=False)


def _columns() -> tuple:
    return (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )


ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def plain(value: Any) -> Any:
    """``value`` with terminal escape codes removed from every string in it (Feast colours the
    names in its registry diffs)."""
    if isinstance(value, str):
        return ANSI.sub("", value)
    if isinstance(value, dict):
        return {plain(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def emit(result: dict[str, Any], as_json: bool) -> None:
    """Print a command's result: one JSON line (plain text, for programs), or ``key: value``
    lines for people."""
    if as_json:
        print(json.dumps(plain(result), default=str, sort_keys=True), flush=True)
        return
    for key, value in result.items():
        if isinstance(value, dict):
            out.print(f"[bold]{key}[/bold]:")
            for k, v in value.items():
                out.print(f"  {k}: {_fmt(v)}")
        else:
            out.print(f"[bold]{key}[/bold]: {_fmt(value)}")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    return str(value)
