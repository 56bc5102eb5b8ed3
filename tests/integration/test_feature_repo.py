"""The feature repo works through fsml and through the plain feast CLI; environments stay apart."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fsml.errors import FsmlError
from fsml.featurestore import apply_repo, describe_service, open_store
from fsml.tables import parquet_files
from tests.conftest import World

pytestmark = pytest.mark.integration

FEAST = Path(sys.executable).parent / "feast"


def test_service_spec_lists_inputs_and_labels(world: World) -> None:
    spec = describe_service(open_store(world.settings), "fraud_model_v1")
    assert spec.join_keys == ("customer_id", "merchant_id")
    assert spec.request_fields == ("amount", "timestamp")
    assert "transaction_context__amount_to_mean_7d" in spec.columns
    assert spec.ttl_seconds["customer_transaction_windows"] == 8 * 86_400
    labels = spec.label_source
    assert (labels.name, labels.id, labels.label, labels.available_at) == (
        "transactions", "transaction_id", "is_fraud", "label_available_at")  # fmt: skip
    assert labels.exists() and labels.labels_path is not None and parquet_files(labels.labels_path)


def test_unknown_feature_service_names_the_known_ones(world: World) -> None:
    with pytest.raises(FsmlError, match=r"unknown feature service 'nope' \(known: fraud_model_v1\)"):
        describe_service(open_store(world.settings), "nope")


def test_plain_feast_cli_applies_the_same_repo_in_another_environment(world: World) -> None:
    """As `eval "$(fsml env)"` sets it up: Feast reads the config fsml uses, written to a file."""
    from fsml.repo import write_effective_yaml

    staging = world.settings.model_copy(update={"env": "staging"})
    env = {**os.environ, **staging.feast_environ(), "FEAST_FS_YAML_FILE_PATH": str(write_effective_yaml(staging))}
    done = subprocess.run(
        [str(FEAST), "-c", str(staging.feature_repo), "apply"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    listed = subprocess.run(
        [str(FEAST), "-c", str(staging.feature_repo), "feature-services", "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert "fraud_model_v1" in listed.stdout
    # The staging registry is its own file and project; dev is untouched.
    assert (world.home / "feast" / "registry_staging.db").is_file()
    assert open_store(staging).project == "fraud_staging"
    assert open_store(world.settings).project == "fraud_dev"


def test_apply_is_idempotent(world: World) -> None:
    diff = apply_repo(world.settings)
    assert "Created" not in diff and "Deleted" not in diff
