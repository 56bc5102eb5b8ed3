"""The current window the monitor looks at: the service's prediction log, or recent offline data.

Logs are read with DuckDB from the hour partitions inside the window only. A file that cannot be
read is left out and named in the result rather than failing the whole run.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd

from fsml.errors import FsmlError

log = logging.getLogger(__name__)

PARTITION = re.compile(r"date=(\d{4}-\d{2}-\d{2})/hour=(\d{2})$")


@dataclass
class Window:
    frame: pd.DataFrame
    start: datetime
    end: datetime
    source: str
    files: int = 0
    skipped: list[str] = field(default_factory=list)

    def describe(self) -> dict[str, object]:
        return {
            "source": self.source,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "rows": len(self.frame),
            "files": self.files,
            "skipped_files": self.skipped,
        }


def _hours(directory: Path) -> dict[datetime, Path]:
    found = {}
    for path in directory.glob("date=*/hour=*"):
        match = PARTITION.search(path.as_posix())
        if match and path.is_dir():
            found[datetime.fromisoformat(f"{match[1]}T{match[2]}:00:00+00:00")] = path
    return found


def logged_window(directory: Path, as_of: datetime, days: float) -> Window:
    """Log rows of the last ``days`` of logged traffic at or before ``as_of`` (event time)."""
    hours = {h: p for h, p in _hours(directory).items() if h <= as_of}
    if not hours:
        raise FsmlError(
            f"no logged predictions in {directory} up to {as_of.isoformat()}: serve or replay traffic first"
        )
    end = min(max(hours) + timedelta(hours=1), as_of)
    start = end - timedelta(days=days)
    files = sorted(f for h, p in hours.items() if h + timedelta(hours=1) > start for f in p.glob("*.parquet"))
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    query = "SELECT * FROM read_parquet(?, union_by_name = true) WHERE event_timestamp >= ? AND event_timestamp <= ?"
    skipped: list[str] = []
    try:
        frame = con.execute(query, [[str(f) for f in files], start, end]).df()
    except duckdb.Error:  # some file is damaged: find which, and read the others
        readable, skipped = _readable(files)
        if not readable:
            raise FsmlError(
                f"no readable prediction log files between {start.isoformat()} and {end.isoformat()}"
            ) from None
        files = readable
        frame = con.execute(query, [[str(f) for f in files], start, end]).df()
    if frame.empty:
        raise FsmlError(f"no logged predictions between {start.isoformat()} and {end.isoformat()}")
    return Window(frame, start, end, "prediction log", len(files), skipped)


def _readable(files: list[Path]) -> tuple[list[Path], list[str]]:
    con = duckdb.connect()
    readable, skipped = [], []
    for path in files:
        try:
            con.sql("SELECT * FROM read_parquet($path)", params={"path": str(path)}).to_arrow_table()
            readable.append(path)
        except duckdb.Error as exc:
            log.warning("skipping unreadable prediction log file %s: %s", path, str(exc).splitlines()[0])
            skipped.append(str(path))
    return readable, skipped


def now() -> datetime:
    return datetime.now(UTC)


def offline_window(settings, bundle, as_of: datetime, days: float) -> Window:  # noqa: ANN001
    """For batch models: the label source's rows of the last ``days``, with point-in-time
    features from the offline store and the champion's scores, shaped like the log."""
    from fsml.training.dataset import label_rows, with_features

    from fsml.featurestore import describe_service, open_store

    store = open_store(settings)
    spec = describe_service(store, bundle.card.feature_service)
    start = as_of - timedelta(days=days)
    entities = label_rows(spec, start, as_of)
    if entities.empty:
        raise FsmlError(f"no {spec.label_source.name} rows between {start.isoformat()} and {as_of.isoformat()}")
    frame = with_features(store, spec, entities)
    frame["score"] = bundle.predict_matrix(bundle.encoder.frame(frame), num_threads=settings.num_threads)
    frame["model_version"] = bundle.version
    frame[spec.id_field] = frame[spec.id_field].astype(str)  # as the prediction log holds ids
    return Window(frame, start, as_of, "offline store")
