"""Where batch work runs: in this process (``FSML_ENGINE=local``) or as Ray tasks (``ray``).

Stages describe their work as a list of independent tasks (a partition of a training set, a
slice of a file to score) and a plain function run on each; ``ordered_results`` runs them here
one after the other, or on Ray, and yields the results in task order as they become available,
so a caller can write them while later tasks still run. The same function runs in both
engines: nothing changes between a laptop and a cluster but the setting.

A Ray task whose worker or node dies is run again (``FSML_RAY_TASK_RETRIES``): tasks are pure
(inputs on a path every node sees, result returned), so a retry gives the same result. When
retries run out the job fails with one line, and callers write their outputs only after the
last result, so a failed job leaves nothing half-written.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from fsml.errors import FsmlError
from fsml.settings import Settings

log = logging.getLogger(__name__)

RAY_MISSING = (
    "FSML_ENGINE=ray needs the ray extra: `uv sync --extra ray` or `pip install 'fsml[ray]'` (or set FSML_ENGINE=local)"
)
Progress = Callable[[str, int, int], None]


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise FsmlError(RAY_MISSING) from None
    return ray


@contextlib.contextmanager
def ray_session(settings: Settings) -> Iterator[Any]:
    """Ray connected to ``RAY_ADDRESS``, or a local Ray started for this command.

    A session already open in this process (a test's cluster, a notebook's ``ray.init``) is used
    as it is and left open.
    """
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING}
    if settings.ray_address:
        options["address"] = settings.ray_address
    else:
        options["num_cpus"] = settings.ray_cpus
    try:
        ray.init(**options)
    except ConnectionError as exc:
        raise FsmlError(f"cannot connect to the Ray cluster at {settings.ray_address}: {exc}") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def engine_session(settings: Settings) -> contextlib.AbstractContextManager[Any]:
    """One Ray session around several steps of a command (nothing for the local engine)."""
    return ray_session(settings) if settings.engine == "ray" else contextlib.nullcontext()


def ray_cpus(ray: Any) -> int:
    """CPUs of the connected cluster: what sizes partitions and workers."""
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def ordered_results(
    settings: Settings,
    task: Callable[..., Any],
    shared: Any,
    arguments: Sequence[tuple[Any, ...]],
    progress: Progress | None = None,
    what: str = "task",
    threads: int = 1,
) -> Iterator[Any]:
    """``task(shared, *args)`` for each tuple of ``arguments``, results yielded in order.

    ``shared`` is what every task needs (a plan, a model): Ray stores it once in its object
    store rather than with each task. The local engine runs up to ``threads`` tasks at a time,
    for tasks that release the GIL (DuckDB, LightGBM, Arrow); a few more wait, done, to be
    taken in order, so memory stays that of a few tasks.
    """
    note = progress or (lambda *_: None)
    total = len(arguments)
    if settings.engine == "local":
        yield from _local(task, shared, arguments, note, what, threads)
        return
    with ray_session(settings) as ray:
        remote = ray.remote(num_cpus=1, max_retries=settings.ray_task_retries, retry_exceptions=False)(task)
        shared_ref = ray.put(shared)
        refs = [remote.remote(shared_ref, *args) for args in arguments]
        try:
            for done, ref in enumerate(refs):
                note(f"{what} {done + 1} of {total} (Ray)", done, total)
                yield _get(ray, ref, what)
            note("done", total, total)
        except BaseException:  # a failed or abandoned job stops the tasks still running
            _, running = ray.wait(refs, num_returns=len(refs), timeout=0)
            for ref in running:
                ray.cancel(ref)
            raise


def _local(
    task: Callable[..., Any], shared: Any, arguments: Sequence[tuple[Any, ...]], note: Progress, what: str, threads: int
) -> Iterator[Any]:
    total = len(arguments)
    if threads <= 1:
        for done, args in enumerate(arguments):
            note(f"{what} {done + 1} of {total}", done, total)
            yield task(shared, *args)
        note("done", total, total)
        return
    with ThreadPoolExecutor(threads, thread_name_prefix="fsml-task") as pool:
        pending: deque[Future[Any]] = deque()
        queued = iter(arguments)
        try:
            for args in itertools.islice(queued, threads + 1):
                pending.append(pool.submit(task, shared, *args))
            done = 0
            while pending:
                note(f"{what} {done + 1} of {total}", done, total)
                result = pending.popleft().result()
                for args in itertools.islice(queued, 1):
                    pending.append(pool.submit(task, shared, *args))
                done += 1
                yield result
            note("done", total, total)
        finally:
            for future in pending:
                future.cancel()


def _get(ray: Any, ref: Any, what: str) -> Any:
    from ray import exceptions

    try:
        return ray.get(ref)
    except exceptions.RayTaskError as exc:
        cause = exc.cause
        if isinstance(cause, FsmlError):
            raise FsmlError(cause.message) from None
        raise FsmlError(f"a Ray {what} failed: {type(cause).__name__}: {_line(cause)}") from None
    except (exceptions.WorkerCrashedError, exceptions.NodeDiedError, exceptions.ObjectLostError) as exc:
        raise FsmlError(
            f"a Ray {what} was lost with its worker and its retries ran out (FSML_RAY_TASK_RETRIES): "
            f"{type(exc).__name__}: {_line(exc)}; nothing was written"
        ) from None


def _line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""
