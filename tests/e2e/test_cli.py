"""The ``fsml`` command contract, run as separate processes the way users and CI run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.conftest import AS_OF, SMALL, TEST_SETTINGS

pytestmark = pytest.mark.e2e

FSML = Path(sys.executable).parent / "fsml"
CLI_ENV: dict[str, str] = {}  # set by the fixtures: the session's Redis
GENERATE = [
    "data",
    "generate",
    "--customers",
    str(SMALL.customers),
    "--merchants",
    str(SMALL.merchants),
    "--days",
    str(SMALL.days),
    "--end-date",
    str(SMALL.end_date),
    "--seed",
    str(SMALL.seed),
]


def run(home: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("FSML_")}
    environ |= {
        "FSML_HOME": str(home),
        **{f"FSML_{k.upper()}": str(v) for k, v in TEST_SETTINGS.items()},
    }
    environ |= CLI_ENV | (env or {})
    return subprocess.run([str(FSML), *args], env=environ, capture_output=True, text=True, timeout=300)


def run_json(home: Path, *args: str) -> dict[str, Any]:
    # As on a colour terminal: --json output must still be plain JSON.
    done = run(home, *args, "--json", env={"FORCE_COLOR": "1", "TERM": "xterm-256color", "CLICOLOR_FORCE": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "\x1b" not in done.stdout, done.stdout[-500:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def assert_one_line_error(done: subprocess.CompletedProcess[str], fragment: str, code: int | None = None) -> None:
    assert done.returncode != 0 and (code is None or done.returncode == code)
    lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], done.stderr
    assert fragment in errors[0], errors[0]
    assert "Traceback" not in done.stderr


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, redis_server) -> Path:
    CLI_ENV["REDIS_URL"] = redis_server.url.rsplit("/", 1)[0] + "/5"  # ids of its own: not the world's
    return tmp_path_factory.mktemp("cli")


def test_full_lifecycle_through_the_cli(home: Path) -> None:
    generated = run_json(home, *GENERATE)
    assert generated["rows"]["transactions"] > 10_000 and 0 < generated["fraud_rate"] < 0.03

    applied = run_json(home, "features", "apply")
    assert applied["project"] == "fraud_dev"
    end = str(SMALL.end_date)
    for source in ("transactions", "labels"):
        raw = str(home / "data" / "raw" / f"{source}.parquet")
        pushed = run_json(home, "push", "--source", source, "--input", raw, "--offline", "--before", end)
        assert pushed["accepted"] > 10_000 and pushed["duplicates"] == 0
    built = run_json(home, "features", "build", "--until", end)
    assert built["mode"] == "full" and set(built["rows_written"]) == {
        "customer_profile",
        "customer_transaction_windows",
        "merchant_profile",
        "merchant_risk",
    }
    assert run_json(home, "features", "build", "--until", end)["mode"] == "unchanged"

    trained = run_json(home, "train", "--as-of", AS_OF.isoformat())
    for key in ("run_id", "model_name", "model_version", "data_fingerprint", "metrics"):
        assert trained[key]
    assert {"test_pr_auc", "test_roc_auc", "test_positive_rate"} <= set(trained["metrics"])
    assert Path(trained["report"]).is_file()

    promoted = run_json(home, "promote", "--as-of", AS_OF.isoformat())
    assert promoted["promoted"] is True
    assert promoted["champion_version"] == promoted["challenger_version"] == trained["model_version"]
    assert promoted["reason"]

    again = run_json(home, "reproduce", trained["run_id"])
    assert again["identical"] is True

    loaded = run_json(home, "features", "materialize", "--end", AS_OF.isoformat())
    assert loaded["chunks"] == 6 and loaded["end"] == AS_OF.isoformat()
    assert loaded["window_entities"]["customer_transaction_windows"] == SMALL.customers
    resumed = run_json(home, "features", "materialize", "--end", AS_OF.isoformat(), "--incremental")
    assert resumed["chunks"] == 0

    source = home / "to_score.parquet"
    tx = pd.read_parquet(home / "data" / "raw" / "transactions.parquet").tail(500)
    tx[["transaction_id", "customer_id", "merchant_id", "amount", "timestamp"]].to_parquet(source)
    scored = run_json(home, "score", "--input", str(source), "--output", str(home / "scored.parquet"))
    assert (scored["rows_in"], scored["rows_scored"], scored["rows_rejected"]) == (500, 500, 0)
    assert scored["model_version"] == trained["model_version"] and Path(scored["output"]).is_file()

    monitored = run_json(home, "monitor", "run", "--source", "offline", "--as-of", AS_OF.isoformat())
    assert monitored["model"]["version"] == trained["model_version"] and Path(monitored["report"]).is_file()

    exported = run(home, "env").stdout
    assert f"export FSML_HOME={home}" in exported and "export FSML_ENV=dev" in exported


def test_invalid_setting_is_one_line(home: Path) -> None:
    assert_one_line_error(run(home, "train", env={"FSML_ENV": "qa"}), "FSML_ENV='qa'", code=2)
    assert_one_line_error(run(home, "train", env={"REDIS_URL": "nohost"}), "REDIS_URL", code=2)


def test_bad_arguments_are_one_line(home: Path) -> None:
    assert_one_line_error(run(home, "train", "--as-of", "yesterday"), "--as-of", code=2)
    assert_one_line_error(run(home, "data", "generate", "--customers", "0"), "--customers", code=2)


def test_unknown_feature_service_and_empty_window(home: Path) -> None:
    assert_one_line_error(run(home, "train", "--feature-service", "nope"), "unknown feature service 'nope'")
    assert_one_line_error(run(home, "train", "--as-of", "2020-01-01"), "empty time window")


def test_corrupted_input_and_bad_rows_are_named(tmp_path: Path) -> None:
    assert run(tmp_path, *GENERATE[:2], "--customers", "50", "--days", "20").returncode == 0
    assert_one_line_error(run(tmp_path, "features", "build"), "run `fsml features apply`")
    assert run(tmp_path, "features", "apply").returncode == 0
    target = (tmp_path / "data" / "raw").resolve() / "transactions.parquet"
    rows = pd.read_parquet(target)
    rows.loc[3, "amount"] = -1.0
    rows.to_parquet(tmp_path / "bad.parquet")
    bad = run(tmp_path, "push", "--source", "transactions", "--input", str(tmp_path / "bad.parquet"), "--offline")
    assert_one_line_error(bad, "row 3: amount: below the minimum 0")
    target.write_bytes(b"garbage")
    assert_one_line_error(run(tmp_path, "push", "--source", "transactions", "--input", str(target)), "cannot read")
    assert_one_line_error(run(tmp_path, "push", "--source", "nope", "--input", str(target)), "unknown push source")
    assert_one_line_error(run(tmp_path, "features", "build"), "nothing has been pushed yet")
    assert not (tmp_path / "data" / "features").exists()
    assert not list((tmp_path / "data" / "events").rglob("*.parquet"))


def test_score_never_writes_over_its_input_or_another_file(tmp_path: Path) -> None:
    source = tmp_path / "in.parquet"
    pd.DataFrame({"customer_id": [1], "merchant_id": [2], "amount": [3.0], "timestamp": [AS_OF]}).to_parquet(source)
    existing = tmp_path / "old.parquet"
    existing.write_bytes(b"keep me")
    folder = tmp_path / "folder"
    folder.mkdir()
    cases = [
        (source, "is the input file"),
        (existing, "exists: remove it or pass --overwrite"),
        (folder, "is a directory"),
    ]
    for output, fragment in cases:
        done = run(tmp_path / "home", "score", "--input", str(source), "--output", str(output))
        assert_one_line_error(done, fragment)
    assert existing.read_bytes() == b"keep me" and source.stat().st_size > 100
    # with --overwrite the check passes (and the command goes on: here to the missing registry)
    done = run(tmp_path / "home", "score", "--input", str(source), "--output", str(existing), "--overwrite")
    assert "pass --overwrite" not in done.stderr and existing.read_bytes() == b"keep me"
