"""Feature pipeline: raw transactions to the Parquet tables behind the Feast feature views.

Each table is one DuckDB SQL file in ``training/sql``. The raw batch is validated before any
feature is computed and every feature table is validated before anything is written; the tables
are then published together (``fsml.atomic.staged_dir``), so a rejected batch leaves the
previous tables exactly as they were.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import duckdb
from fsml.examples.fraud.synthetic import RAW_TABLES, load_meta
from fsml.features.validation import FLOAT, INT, TEXT, TIME, Column, TableSpec, validate

from fsml.atomic import staged_dir
from fsml.errors import FsmlError, ValidationFailed
from fsml.fingerprint import file_digest

HOUR_US = 3_600 * 1_000_000
DAY_US = 24 * HOUR_US
NIGHT_HOURS = 6  # transactions before 06:00 UTC count as night-time

Progress = Callable[[str], None]


def _id(name: str) -> Column:
    return Column(name, INT, min=1)


def _count(name: str) -> Column:
    return Column(name, INT, min=0)


def _amount(name: str, max_null_rate: float = 0.0) -> Column:
    return Column(name, FLOAT, max_null_rate=max_null_rate, min=0)


TIMESTAMPS = (Column("event_timestamp", TIME), Column("created_timestamp", TIME))

RAW_SPECS = {
    "customers": TableSpec(
        "customers",
        (
            _id("customer_id"),
            Column("age", INT, min=18, max=120),
            Column("home_region", TEXT),
            Column("account_opened_at", TIME),
            _amount("credit_limit"),
        ),
        key=("customer_id",),
    ),
    "merchants": TableSpec(
        "merchants",
        (_id("merchant_id"), Column("category", TEXT), Column("is_online", INT, min=0, max=1)),
        key=("merchant_id",),
    ),
    "transactions": TableSpec(
        "transactions",
        (
            _id("transaction_id"),
            _id("customer_id"),
            _id("merchant_id"),
            Column("amount", FLOAT, min=0.01),
            Column("timestamp", TIME),
            Column("is_fraud", INT, min=0, max=1),
            Column("label_available_at", TIME),
        ),
        key=("transaction_id",),
        rules=(
            ("label_after_transaction", "label_available_at >= timestamp"),
            ("known_customer", "customer_id IN (SELECT customer_id FROM customers)"),
            ("known_merchant", "merchant_id IN (SELECT merchant_id FROM merchants)"),
            ("inside_data_window", "timestamp >= $start AND timestamp < $end"),
        ),
    ),
}

FEATURE_SPECS = {
    "customer_profile": TableSpec(
        "customer_profile",
        (
            _id("customer_id"),
            *TIMESTAMPS,
            Column("age", INT, min=18, max=120),
            _count("account_tenure_days"),
            _amount("credit_limit"),
            Column("home_region", TEXT),
        ),
        key=("customer_id", "event_timestamp"),
    ),
    "customer_transaction_windows": TableSpec(
        "customer_transaction_windows",
        (
            _id("customer_id"),
            *TIMESTAMPS,
            _count("txn_count_1h"),
            _amount("amount_sum_1h"),
            _count("txn_count_24h"),
            _amount("amount_sum_24h"),
            _amount("amount_max_24h", max_null_rate=0.95),
            _count("distinct_merchants_24h"),
            _count("txn_count_7d"),
            _amount("amount_mean_7d", max_null_rate=0.95),
            _amount("amount_std_7d", max_null_rate=0.99),
            _amount("amount_max_7d", max_null_rate=0.95),
            _count("distinct_merchants_7d"),
            Column("night_share_7d", FLOAT, max_null_rate=0.95, min=0, max=1),
        ),
        key=("customer_id", "event_timestamp"),
        rules=(("distinct_within_count", "distinct_merchants_7d <= txn_count_7d"),),
    ),
    "merchant_profile": TableSpec(
        "merchant_profile",
        (
            _id("merchant_id"),
            *TIMESTAMPS,
            Column("category", TEXT),
            Column("is_online", INT, min=0, max=1),
        ),
        key=("merchant_id", "event_timestamp"),
    ),
    "merchant_risk": TableSpec(
        "merchant_risk",
        (
            _id("merchant_id"),
            *TIMESTAMPS,
            _count("merchant_txn_count_1d"),
            _count("merchant_txn_count_7d"),
            _count("merchant_txn_count_30d"),
            _count("merchant_labelled_count_30d"),
            _count("merchant_fraud_count_30d"),
            Column("merchant_fraud_rate_30d", FLOAT, max_null_rate=0.99, min=0, max=1),
        ),
        key=("merchant_id", "event_timestamp"),
        rules=(("fraud_within_labelled", "merchant_fraud_count_30d <= merchant_labelled_count_30d"),),
    ),
}


@dataclass(frozen=True)
class BuildResult:
    tables: dict[str, int]  # rows per published table
    directory: Path
    start: datetime
    end: datetime


def build_features(
    raw_dir: Path,
    features_dir: Path,
    created: datetime | None = None,
    progress: Progress | None = None,
) -> BuildResult:
    """Validate the raw batch, compute every feature table, validate them, then publish all."""
    note = progress or (lambda _: None)
    meta = _read_meta(raw_dir)
    start, end = datetime.fromisoformat(meta["start"]), datetime.fromisoformat(meta["end"])
    con = _connect()
    note("validating raw batch")
    _register_raw(con, raw_dir)
    window = {"start": start, "end": end}
    failures = [f for name, spec in RAW_SPECS.items() for f in validate(con, name, _bind(spec, window))]
    if failures:
        raise ValidationFailed(f"raw batch {raw_dir}", failures)
    params = {
        "start_us": _epoch_us(start),
        "end_us": _epoch_us(end),
        "day": DAY_US,
        "hour": HOUR_US,
        "created": (created or datetime.now(UTC)).replace(microsecond=0),
    }
    for name, spec in FEATURE_SPECS.items():
        note(f"computing {name}")
        sql = _sql(name)
        con.execute(f"CREATE TABLE {name} AS {sql}", {k: v for k, v in params.items() if f"${k}" in sql})
        failures += validate(con, name, spec)
    if failures:
        raise ValidationFailed("feature batch", failures)
    rows = {}
    note("publishing feature tables")
    with staged_dir(features_dir) as stage:
        for name in FEATURE_SPECS:
            con.execute(f"COPY {name} TO '{stage / name}.parquet' (FORMAT PARQUET, COMPRESSION ZSTD)")
            rows[name] = con.execute(f"SELECT count(*) FROM {name}").fetchone()[0]
        manifest = {
            "inputs": input_fingerprint(raw_dir),
            "rows": rows,
            "start": meta["start"],
            "end": meta["end"],
            "created": params["created"].isoformat(),
        }
        (stage / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return BuildResult(tables=rows, directory=features_dir, start=start, end=end)


def input_fingerprint(raw_dir: Path) -> str:
    """What the tables are computed from: the raw files' bytes and the pipeline's own code."""
    digest = hashlib.sha256()
    for path in sorted(raw_dir.glob("*.parquet")):
        digest.update(path.name.encode())
        file_digest(path, digest)
    for path in sorted(Path(__file__).parent.joinpath("sql").glob("*.sql")) + [Path(__file__)]:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def published_inputs(features_dir: Path) -> str | None:
    """The input fingerprint recorded with the published tables, if any."""
    try:
        return json.loads((features_dir / "manifest.json").read_text()).get("inputs")
    except (FileNotFoundError, ValueError):
        return None


def _read_meta(raw_dir: Path) -> dict:
    try:
        return load_meta(raw_dir)
    except FileNotFoundError as exc:
        raise FsmlError(str(exc)) from None
    except ValueError as exc:
        raise FsmlError(f"{raw_dir / 'meta.json'} is corrupted: {exc}") from None


def _connect() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    return con


def _register_raw(con: duckdb.DuckDBPyConnection, raw_dir: Path) -> None:
    """Load the raw Parquet files; a missing or corrupted file is named in a one-line error."""
    for name in RAW_TABLES:
        path = raw_dir / f"{name}.parquet"
        if not path.is_file():
            raise FsmlError(f"missing raw table {path}: run `fsml data generate`")
        try:
            con.execute(f"CREATE TABLE {name} AS SELECT * FROM read_parquet(?)", [str(path)])
        except duckdb.Error as exc:
            raise FsmlError(f"cannot read {path}: {_first_line(exc)}") from None
    con.execute(
        f"""CREATE VIEW tx AS SELECT
            customer_id, merchant_id, amount, is_fraud,
            epoch_us("timestamp") AS ts,
            epoch_us(label_available_at) AS label_us,
            CAST(hour("timestamp") < {NIGHT_HOURS} AS DOUBLE) AS night
        FROM transactions"""
    )


def _bind(spec: TableSpec, values: dict[str, datetime]) -> TableSpec:
    """Substitute ``$name`` time literals in a spec's row rules."""
    rules = []
    for name, predicate in spec.rules:
        for key, value in values.items():
            predicate = predicate.replace(f"${key}", f"TIMESTAMPTZ '{value.isoformat()}'")
        rules.append((name, predicate))
    return TableSpec(spec.name, spec.columns, spec.key, spec.min_rows, tuple(rules))


def _sql(name: str) -> str:
    return resources.files("fsml.features").joinpath("sql", f"{name}.sql").read_text()


def _epoch_us(value: datetime) -> int:
    return int(value.timestamp()) * 1_000_000


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0]
