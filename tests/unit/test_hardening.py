"""Secure defaults and safe answers: keys, error bodies, request bounds, decisions, signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime

import numpy as np
import orjson
import pytest
from fsml.serving.auth import configured_keys, key_matches
from fsml.serving.decision import decide, decide_many
from fsml.serving.errors import MAX_TEXT, json_safe, public_reason, validation_errors
from fsml.serving.schemas import request_model
from pydantic import SecretStr, ValidationError

from fsml.featurestore import Input
from fsml.settings import Settings

INPUTS = (Input("customer_id", "int", "key"), Input("amount", "float", "request"), Input("ts", "timestamp", "request"))


@pytest.mark.parametrize("value", ["", " ", "\t\n  "])
def test_a_blank_api_key_is_no_key(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("FSML_API_KEY", value)
    assert Settings().api_key is None
    assert Settings(api_key=SecretStr(value)).api_key is None
    assert Settings(api_key="k").api_key.get_secret_value() == "k"


def test_prod_refuses_to_start_with_a_blank_key(monkeypatch: pytest.MonkeyPatch) -> None:
    from fsml.serving.app import check_deployable

    from fsml.errors import FsmlError

    monkeypatch.setenv("FSML_API_KEY", "   ")
    with pytest.raises(FsmlError, match="FSML_ENV=prod needs FSML_API_KEY"):
        check_deployable(Settings(env="prod"))


def test_keys_compare_as_bytes_and_any_header_is_an_answer() -> None:
    settings = Settings(api_key="clé-secrète")
    keys = configured_keys(settings, ("api_key", "push_key"))  # an unknown or unset name adds nothing
    assert keys == ["clé-secrète".encode()]
    # the header as Starlette hands it: its bytes decoded as Latin-1
    assert key_matches("clé-secrète".encode().decode("latin-1"), keys)
    for offered in (None, "", "clé-secrète", "wrong", "\u20ac" * 3, "\x00", "x" * 10_000):
        assert not key_matches(offered, keys)
    assert configured_keys(Settings(), ("api_key",)) == []


def test_error_excerpts_are_bounded_and_always_writable() -> None:
    huge = {"customer_id": "x" * 10_000_000, "rows": list(range(1_000_000)), "n": 2**80, "f": float("nan")}
    nested: object = 1
    for _ in range(1000):
        nested = [nested]
    safe = json_safe({**huge, "nested": nested, "s": "\ud800", "b": b"\xff\xfe"})
    text = orjson.dumps(safe)  # orjson refuses integers past 64 bits and lone surrogates
    assert len(text) < 2_000
    assert safe["customer_id"].startswith("x" * MAX_TEXT) and "10000000 characters" in safe["customer_id"]
    assert safe["n"] == str(2**80) and safe["f"] == "nan" and safe["s"] == "\\ud800"
    errors = validation_errors([{"loc": ["body", i], "input": "y" * 5000} for i in range(500)])
    assert len(orjson.dumps(errors)) < 10_000 and errors[-1]["msg"] == "480 more errors"


def test_public_reasons_show_no_absolute_paths() -> None:
    reason = "no MLflow store under /work/home/.fsml/mlflow: train a model first\nTraceback ..."
    assert public_reason(reason) == "no MLflow store under .../mlflow: train a model first"
    assert public_reason("see http://host:5000/a/b and /tmp/x/y.db") == "see http://host:5000/a/b and .../y.db"
    assert public_reason("model 'fsml-dev-x' has no champion") == "model 'fsml-dev-x' has no champion"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("customer_id", 2**63, "less than or equal"),
        ("customer_id", -(2**63) - 1, "greater than or equal"),
        ("transaction_id", 2**64, "64-bit"),
        ("transaction_id", "\ud800", "lone surrogate"),
        ("transaction_id", True, "integer, a string or null"),
        ("transaction_id", "", "1 to 256"),
        ("amount", "42.5", "valid number"),
        ("amount", True, "valid number"),
        ("amount", float("inf"), "finite"),
        ("ts", "0001-01-01T00:00:00+01:00", "between 1970-01-01 and 2200-01-01"),
        ("ts", "9999-12-31T23:59:59-05:00", "between 1970-01-01 and 2200-01-01"),
        ("ts", "1969-12-31T23:59:59Z", "between 1970-01-01 and 2200-01-01"),
        ("ts", "2200-01-01T00:00:00Z", "between 1970-01-01 and 2200-01-01"),
    ],
)
def test_out_of_range_values_are_errors_naming_the_field(field: str, value: object, message: str) -> None:
    single, _ = request_model(INPUTS, 10, "transaction_id", "ts")
    body = {"customer_id": 1, "amount": 2.0, field: value}
    with pytest.raises(ValidationError) as caught:
        single.model_validate(body)  # python mode: FastAPI's path
    errors = caught.value.errors()
    assert [e["loc"] for e in errors] == [(field,)] and message in errors[0]["msg"]


def test_times_in_range_are_utc() -> None:
    single, _ = request_model(INPUTS, 10, "transaction_id", "ts")
    parsed = single.model_validate_json(b'{"customer_id": 1, "amount": 2, "ts": "2026-01-01T05:00:00+05:00"}')
    assert parsed.ts == datetime(2026, 1, 1, tzinfo=UTC) and parsed.amount == 2.0
    assert single.model_validate({"customer_id": 1, "amount": 2, "transaction_id": 2**63 - 1}).transaction_id


def test_the_missing_features_policy_never_passes_silently() -> None:
    assert Settings().missing_features_decision == "review"
    assert decide(0.99, 0.5, True, "review") == "review" and decide(0.01, 0.5, True, "flag") == "flag"
    assert decide(0.7, 0.5, False, "review") == "flag" and decide(0.1, 0.5, False, "review") == "pass"
    scores, missing = np.array([0.9, 0.1, 0.1]), np.array([False, False, True])
    assert decide_many(scores, 0.5, missing, "review").tolist() == ["flag", "pass", "review"]
    with pytest.raises(ValidationError):
        Settings(missing_features_decision="ignore")


def test_sigterm_unwinds_a_command() -> None:
    """SIGTERM raises in the main thread, so ``finally`` runs; ``except Exception`` does not catch it."""
    code = (
        "import os, signal, time\n"
        "from fsml.signals import Terminated, terminate_as_exception\n"
        "terminate_as_exception()\n"
        "try:\n"
        "    try:\n"
        "        print('ready', flush=True); time.sleep(30)\n"
        "    except Exception:\n"
        "        print('swallowed')\n"
        "    finally:\n"
        "        print('cleaned up', flush=True)\n"
        "except Terminated as exc:\n"
        "    print(exc, flush=True)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "ready"
    os.kill(child.pid, signal.SIGTERM)
    out, _ = child.communicate(timeout=30)
    assert out.split("\n")[:2] == ["cleaned up", "stopped by SIGTERM"] and "swallowed" not in out


def test_json_safe_output_round_trips() -> None:
    assert json.loads(orjson.dumps(json_safe({"a": [1, 2.5, None, "t"]}))) == {"a": [1, 2.5, None, "t"]}
