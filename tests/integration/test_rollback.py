"""The champion alias history and ``fsml rollback``, on a real MLflow store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fsml import registry
from fsml.errors import FsmlError
from tests.conftest import make_settings

pytestmark = pytest.mark.integration


def _versions(tmp_path: Path, count: int):
    settings = make_settings(tmp_path)
    client = registry.client(settings)
    name = settings.model_name(settings.feature_service)
    client.create_registered_model(name)
    source = tmp_path / "model"
    source.mkdir()
    versions = [str(client.create_model_version(name, source=str(source)).version) for _ in range(count)]
    return settings, client, name, versions


def test_rollback_goes_back_one_promotion_at_a_time(tmp_path: Path) -> None:
    settings, client, name, versions = _versions(tmp_path, 3)
    for version in versions:
        registry.set_champion(client, name, version, "promoted: test")
    assert registry.rollback(settings, reason="canary errors") == {
        "model": name,
        "from_version": "3",
        "to_version": "2",
        "reason": "canary errors",
    }
    assert client.get_model_version(name, "3").tags["fsml.rolled_back"] == "canary errors"
    assert registry.rollback(settings)["to_version"] == "1"  # not back to 3: rollbacks are no targets
    with pytest.raises(FsmlError, match="no previous champion"):
        registry.rollback(settings)
    moves = registry.champion_history(client, name)
    assert [m["version"] for m in moves] == ["1", "2", "3", "2", "1"]
    assert [m["previous"] for m in moves] == [None, "1", "2", "3", "2"]


def test_fsml_rollback_is_one_command_and_is_recorded(tmp_path: Path) -> None:
    settings, client, name, versions = _versions(tmp_path, 2)
    for version in versions:
        registry.set_champion(client, name, version, "promoted: test")
    env = {**os.environ, "FSML_HOME": str(settings.home), "FSML_ENV": settings.env}
    done = subprocess.run(
        [str(Path(sys.executable).parent / "fsml"), "rollback", "--reason", "p99 too high", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1])["to_version"] == "1"
    assert str(registry.version_by_alias(client, name, registry.CHAMPION).version) == "1"
    events = (settings.monitoring_dir / "triggers.jsonl").read_text().splitlines()
    assert json.loads(events[-1])["event"] == "rollback" and "p99 too high" in events[-1]
