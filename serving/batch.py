"""``fsml score``: a file of requests scored with the champion and point-in-time features.

The file holds the fields of the model's predict request; its time field (see
``fsml.featurestore``) is required. Each row gets the features as they were at its own time
(the offline store's point-in-time join, as in training) and the same model the API serves.
Rows whose keys or times cannot be used are written with the reason to a side file, never
dropped silently. Both files are written under temporary names and renamed into place when
complete.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from fsml.serving.decision import decide_many
from fsml.training.dataset import with_features

from fsml import registry
from fsml.atomic import atomic_path
from fsml.errors import FsmlError
from fsml.featurestore import Input, ServiceSpec, describe_service, open_store
from fsml.model import ModelBundle
from fsml.settings import Settings

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]
ROW = "__row"
INT64_MAX = 2**63 - 1


def score_file(
    settings: Settings, source: Path, target: Path, progress: Progress | None = None, overwrite: bool = False
) -> dict[str, Any]:
    note = progress or (lambda *_: None)
    rejected_path = target.with_name(target.stem + ".rejected.parquet")
    check_output(source, target, rejected_path, overwrite)
    frame = _read(source)
    name = settings.model_name(settings.feature_service)
    bundle = registry.load_champion(settings, ": run `fsml promote`")
    store = open_store(settings)
    spec = describe_service(store, bundle.card.feature_service)
    time_field = spec.time_field
    good, rejected = split_valid(frame, spec.inputs, time_field)
    chunks = max(1, -(-len(good) // settings.score_chunk_rows))
    scored = []
    for index in range(chunks):
        note(f"chunk {index + 1} of {chunks}", index, chunks)
        part = good.iloc[index * settings.score_chunk_rows : (index + 1) * settings.score_chunk_rows]
        if len(part):
            policy = settings.missing_features_decision
            scored.append(_score_chunk(store, spec, bundle, part, time_field, settings.num_threads, policy))
    note("writing", chunks, chunks)
    result = pd.concat(scored, ignore_index=True) if scored else _empty(frame)
    meta = {
        "fsml.model_name": name,
        "fsml.model_version": bundle.version,
        "fsml.feature_service": spec.name,
        "fsml.scored_at": datetime.now(UTC).isoformat(),
    }
    _write(result, target, meta)
    if len(rejected):
        _write(rejected, rejected_path, meta)
    else:  # a side file of an earlier run (overwritten) must not pass for this run's
        rejected_path.unlink(missing_ok=True)
    return {
        "rows_in": len(frame),
        "rows_scored": len(result),
        "rows_rejected": len(rejected),
        "output": str(target),
        "rejected": str(rejected_path) if len(rejected) else None,
        "model_name": name,
        "model_version": bundle.version,
    }


def check_output(source: Path, target: Path, rejected: Path, overwrite: bool) -> None:
    """Refuse to write onto the input, into a directory, or (without ``overwrite``) onto a file."""
    for path in (target, rejected):
        if path.is_dir():
            raise FsmlError(f"output {path} is a directory: give a file name")
        if path.exists() and source.exists() and path.samefile(source):
            raise FsmlError(f"output {path} is the input file: give another name")
        if path.exists() and not overwrite:
            raise FsmlError(f"output {path} exists: remove it or pass --overwrite")
    if not target.parent.is_dir() and target.parent.exists():
        raise FsmlError(f"output folder {target.parent} is not a directory")


def _read(source: Path) -> pd.DataFrame:
    if not source.is_file():
        raise FsmlError(f"no input file {source}")
    try:
        frame = pq.read_table(source).to_pandas()
    except (pa.ArrowException, OSError) as exc:
        raise FsmlError(f"cannot read {source} as Parquet: {str(exc).splitlines()[0]}") from None
    return frame.reset_index(drop=True).assign(**{ROW: np.arange(len(frame))})


def split_valid(frame: pd.DataFrame, inputs: tuple[Input, ...], time_field: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rows that can be scored, rows that cannot, with a ``reason`` column)."""
    missing = [i.name for i in inputs if i.name not in frame.columns and i.name != time_field]
    if time_field not in frame.columns:
        missing.append(time_field)
    if missing:
        raise FsmlError(f"input has no column(s) {', '.join(missing)}")
    reasons = pd.Series("", index=frame.index, dtype=object)

    def flag(mask: pd.Series, reason: str) -> None:
        reasons.loc[mask & (reasons == "")] = reason

    times = pd.to_datetime(frame[time_field], utc=True, errors="coerce")
    flag(times.isna(), f"{time_field}: missing or not a time")
    for spec in inputs:
        if spec.name == time_field:
            continue
        if spec.dtype == "timestamp":
            flag(
                pd.to_datetime(frame[spec.name], utc=True, errors="coerce").isna(),
                f"{spec.name}: missing or not a time",
            )
            continue
        column = frame[spec.name]
        if spec.dtype in ("int", "float"):
            values = pd.to_numeric(column, errors="coerce")
            flag(values.isna(), f"{spec.name}: missing or not a number")
            flag(~np.isfinite(values.fillna(0)), f"{spec.name}: not finite")
            if spec.dtype == "int":
                flag((values % 1 != 0) | (values.abs() > INT64_MAX), f"{spec.name}: not an integer")
            if spec.minimum is not None:
                flag(values < spec.minimum, f"{spec.name}: below {spec.minimum:g}")
        else:
            flag(column.isna() | (column.astype(str).str.len() == 0), f"{spec.name}: missing")
    bad = reasons != ""
    good = frame[~bad].copy()
    good[time_field] = times[~bad].astype("datetime64[us, UTC]")
    for spec in inputs:
        if spec.dtype == "int" and spec.name in good:
            good[spec.name] = pd.to_numeric(good[spec.name]).astype(np.int64)
        elif spec.dtype == "float" and spec.name in good:
            good[spec.name] = pd.to_numeric(good[spec.name]).astype(np.float64)
        elif spec.dtype == "timestamp" and spec.name in good and spec.name != time_field:
            good[spec.name] = pd.to_datetime(good[spec.name], utc=True).astype("datetime64[us, UTC]")
    rejected = frame[bad].assign(reason=reasons[bad]).drop(columns=[ROW])
    return good, rejected


def _score_chunk(
    store: Any,
    spec: ServiceSpec,
    bundle: ModelBundle,
    part: pd.DataFrame,
    time_field: str,
    threads: int,
    policy: str,
) -> pd.DataFrame:
    names = [*dict.fromkeys([*spec.join_keys, *spec.request_fields, time_field])]
    entities = part[[*names, ROW]].assign(event_timestamp=part[time_field])
    features = with_features(store, spec, entities).sort_values(ROW, kind="mergesort")
    scores = bundle.predict_matrix(bundle.encoder.frame(features), num_threads=threads)
    columns = bundle.card.columns
    absent = features[columns].isna().to_numpy()
    all_missing = bundle.all_missing(absent)
    out = part.sort_values(ROW, kind="mergesort").reset_index(drop=True)
    out["score"] = scores
    out["decision"] = decide_many(scores, bundle.card.threshold, all_missing, policy)
    out["all_missing"] = all_missing
    out["missing_features"] = [[c for c, a in zip(columns, row, strict=True) if a] for row in absent]
    out["model_version"] = bundle.version
    return out.drop(columns=[ROW])


def _empty(frame: pd.DataFrame) -> pd.DataFrame:
    return (
        frame.drop(columns=[ROW])
        .iloc[0:0]
        .assign(score=[], decision=[], all_missing=[], missing_features=[], model_version=[])
    )


def _write(frame: pd.DataFrame, target: Path, meta: dict[str, str]) -> None:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), **{k: v.encode() for k, v in meta.items()}})
    with atomic_path(target) as tmp:
        pq.write_table(table, tmp)
