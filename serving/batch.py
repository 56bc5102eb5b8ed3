"""``fsml score``: Parquet files of requests scored with the champion and point-in-time features.

The files hold the fields of the model's predict request; its time field (see
``fsml.featurestore``) is required. Each row gets the features as they were at its own time
(the offline store's point-in-time join, as in training) and the same model the API serves.
Rows whose keys or times cannot be used are written with the reason to a side file, never
dropped silently.

The input is a file, a directory or a glob of Parquet files; a directory or a glob gives a
directory of outputs with the same relative paths (``date=.../part-0.parquet`` stays so), and
the rejected rows under ``_rejected/`` (a name dataset readers skip). Each file is cut into
slices by ranges of an entity key, about ``FSML_SCORE_CHUNK_ROWS`` rows each
(``fsml.serving.batch_task``); slices run in threads here or as Ray tasks (``FSML_ENGINE``), and
are written as row groups in slice order as they finish, rows of a slice in input order.
Every output is written under a temporary name and renamed into place once all slices have
succeeded, so a failed job leaves no partial output.
"""

from __future__ import annotations

import glob
import hashlib
import itertools
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from fsml.serving.batch_rows import check_columns
from fsml.serving.batch_task import ScoringPlan, Slice, context, release, score_slice

from fsml import registry
from fsml.distributed import ordered_results
from fsml.errors import FsmlError
from fsml.featurestore import ServiceSpec, describe_service, open_store
from fsml.settings import Settings
from fsml.stores.partition import key_ranges, partition_key

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]
REJECTED_DIR = "_rejected"


@dataclass(frozen=True)
class Output:
    source: Path
    target: Path
    rejected: Path


def score_file(
    settings: Settings,
    source: Path | str,
    target: Path | str,
    progress: Progress | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Score a file (or a directory or glob of files) into ``target``; return a summary."""
    outputs = plan_outputs(str(source), Path(target))
    check_outputs(outputs, overwrite)
    name = settings.model_name(settings.feature_service)
    bundle = registry.load_champion(settings, ": run `fsml promote`")
    store = open_store(settings)
    spec = describe_service(store, bundle.card.feature_service)
    time_field = spec.time_field
    found = {o.source: _check_input(o.source, spec, time_field) for o in outputs}
    rows = {path: count for path, (count, _) in found.items()}
    key, key_type = partition_key(store, spec.name)
    threads = (os.cpu_count() or 1) if settings.engine == "local" else 1
    slices = []
    for o in outputs:
        count = -(-rows[o.source] // settings.score_chunk_rows)
        ranges = key_ranges(key, key_type, "read_parquet($1)", [str(o.source)], count) if count > 1 else [None]
        slices += [Slice(str(o.source), part, found[o.source][1]) for part in ranges]
    plan = ScoringPlan(
        key=hashlib.sha256(f"{settings.model_dump_json()}|{bundle.version}".encode()).hexdigest(),
        settings=settings,
        booster_text=bundle.booster_text,
        card_json=bundle.card.model_dump_json(),
        version=bundle.version,
        time_field=time_field,
        missing_decision=settings.missing_features_decision,
        predict_threads=threads,
        join_threads=max(1, threads // max(1, min(threads, len(slices)))),
    )
    if settings.engine == "local":
        context(plan)  # built once here, shared by the threads, dropped at the end
    meta = {
        "fsml.model_name": name,
        "fsml.model_version": bundle.version,
        "fsml.feature_service": spec.name,
        "fsml.engine": settings.engine,
        "fsml.scored_at": datetime.now(UTC).isoformat(),
    }
    results = ordered_results(settings, score_slice, plan, [(s,) for s in slices], progress, "slice", threads)
    try:
        counts = _write_all(outputs, slices, results, meta)
    finally:
        release(plan)
    single = len(outputs) == 1 and outputs[0].target == Path(target)
    return {
        "rows_in": sum(rows.values()),
        "rows_scored": counts["scored"],
        "rows_rejected": counts["rejected"],
        "files": len(outputs),
        "slices": len(slices),
        "engine": settings.engine,
        "output": str(target),
        "rejected": (str(outputs[0].rejected) if single else str(Path(target) / REJECTED_DIR))
        if counts["rejected"]
        else None,
        "model_name": name,
        "model_version": bundle.version,
    }


def plan_outputs(source: str, target: Path) -> list[Output]:
    """Input files and where each one's scores go."""
    path = Path(source)
    if path.is_file():
        return [Output(path, target, target.with_name(target.stem + ".rejected.parquet"))]
    if path.is_dir():
        root, files = path, sorted(p for p in path.rglob("*.parquet") if _visible(p.relative_to(path)))
    elif glob.has_magic(source):
        fixed = list(itertools.takewhile(lambda part: not glob.has_magic(part), path.parts))
        root = Path(*fixed) if fixed else Path(".")
        files = sorted(Path(p) for p in glob.glob(source, recursive=True) if Path(p).is_file())
    else:
        raise FsmlError(f"no input file {source}")
    if not files:
        raise FsmlError(f"no input file {source}: no Parquet file there")
    if target.is_file():
        raise FsmlError(f"output {target} is a file: give a directory for a directory or glob of inputs")
    return [Output(f, target / f.relative_to(root), target / REJECTED_DIR / f.relative_to(root)) for f in files]


def check_outputs(outputs: list[Output], overwrite: bool) -> None:
    """Refuse to write onto an input, onto a directory, or (without ``overwrite``) onto a file."""
    inputs = {o.source.resolve() for o in outputs}
    for output in outputs:
        for path in (output.target, output.rejected):
            if path.is_dir():
                raise FsmlError(f"output {path} is a directory: give a file name")
            if path.resolve() in inputs:
                raise FsmlError(f"output {path} is the input file: give another name")
            if path.exists() and not overwrite:
                raise FsmlError(f"output {path} exists: remove it or pass --overwrite")
        folder = output.target.parent
        while not folder.exists():
            folder = folder.parent
        if not folder.is_dir():
            raise FsmlError(f"output folder {folder} is not a directory")


def _visible(relative: Path) -> bool:
    return not any(part.startswith(("_", ".")) for part in relative.parts)


def _check_input(path: Path, spec: ServiceSpec, time_field: str) -> tuple[int, tuple[str, ...]]:
    """Rows of a readable input with every input column, and the columns that hold a pandas
    index rather than data; a one-line error otherwise."""
    try:
        metadata = pq.read_metadata(path)
    except (pa.ArrowException, OSError) as exc:
        raise FsmlError(f"cannot read {path} as Parquet: {str(exc).splitlines()[0]}") from None
    schema = metadata.schema.to_arrow_schema()
    check_columns(schema.names, spec.inputs, time_field)
    index = (schema.pandas_metadata or {}).get("index_columns", [])
    return metadata.num_rows, tuple(c for c in index if isinstance(c, str) and c in schema.names)


class _FileWriter:
    """Scored and rejected rows of one input, appended slice by slice to temporary files."""

    def __init__(self, output: Output, meta: dict[str, str], stack: ExitStack) -> None:
        self.output, self.meta, self.stack = output, meta, stack
        self.temps: list[tuple[Path, Path]] = []
        self.scored: pq.ParquetWriter | None = None
        self.rejected: pq.ParquetWriter | None = None

    def _open(self, target: Path, schema: pa.Schema) -> pq.ParquetWriter:
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        self.temps.append((temp, target))
        schema = schema.with_metadata({**(schema.metadata or {}), **{k: v.encode() for k, v in self.meta.items()}})
        return self.stack.enter_context(pq.ParquetWriter(temp, schema))

    def write(self, scored: pa.Table, rejected: pa.Table) -> None:
        if self.scored is None:
            self.scored = self._open(self.output.target, scored.schema)
        self.scored.write_table(scored.cast(self.scored.schema))
        if rejected.num_rows:
            if self.rejected is None:
                self.rejected = self._open(self.output.rejected, rejected.schema)
            self.rejected.write_table(rejected.cast(self.rejected.schema))


@contextmanager
def _committing(writers: dict[str, _FileWriter]) -> Iterator[ExitStack]:
    """Rename every temporary file into place after all writers closed; delete them on failure."""
    done = False
    try:
        with ExitStack() as stack:
            yield stack
        done = True
        for writer in writers.values():
            for temp, target in writer.temps:
                with open(temp, "rb") as handle:
                    os.fsync(handle.fileno())
                os.replace(temp, target)
            if writer.rejected is None:  # a side file of an earlier run (overwritten) must not pass for this run's
                writer.output.rejected.unlink(missing_ok=True)
    finally:
        if not done:
            for writer in writers.values():
                for temp, _ in writer.temps:
                    temp.unlink(missing_ok=True)


def _write_all(
    outputs: list[Output], slices: list[Slice], results: Iterator[tuple[pa.Table, pa.Table]], meta: dict[str, str]
) -> dict[str, int]:
    by_source = {str(o.source): o for o in outputs}
    writers: dict[str, _FileWriter] = {}
    counts = {"scored": 0, "rejected": 0}
    with _committing(writers) as stack:
        for piece, (scored, rejected) in zip(slices, results, strict=True):
            if piece.path not in writers:
                writers[piece.path] = _FileWriter(by_source[piece.path], meta, stack)
            writers[piece.path].write(scored, rejected)
            counts["scored"] += scored.num_rows
            counts["rejected"] += rejected.num_rows
    return counts
