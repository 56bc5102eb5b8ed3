"""``fsml backup`` while the service runs, ``fsml restore`` into an empty home, and the same
champion served from the restored home by a real server process."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import tarfile
from pathlib import Path

import httpx
import pytest
from fsml.serving.process import ServerProcess, settings_environ

from fsml.errors import FsmlError
from tests.conftest import AS_OF, Champion

pytestmark = pytest.mark.e2e

FSML = Path(sys.executable).parent / "fsml"
BODY = {"customer_id": 3, "merchant_id": 5, "amount": 42.5, "timestamp": AS_OF.isoformat()}


def fsml_json(env: dict[str, str], *args: str) -> dict:
    done = subprocess.run([str(FSML), *args, "--json"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "\x1b" not in done.stdout
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_backup_while_serving_then_restore_and_serve_the_same_champion(
    server, champion: Champion, tmp_path: Path
) -> None:
    original = httpx.post(server.url + "/v1/predict", json=BODY).json()
    env = {**settings_environ(champion.settings), "FORCE_COLOR": "1", "TERM": "xterm-256color"}
    archive = tmp_path / "fsml.tar.gz"
    made = fsml_json(env, "backup", "--output", str(archive))  # the server above keeps running
    assert Path(made["archive"]) == archive and made["files"] > 5
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert "./mlflow/mlflow.db" in names and "./feast/registry_staging.db" in names
    assert any(n.startswith("./logs/predictions/staging/") and n.endswith(".parquet") for n in names)
    assert not any(n.startswith("./data/") for n in names)  # data only with --data

    home = tmp_path / "restored"
    restored_settings = champion.settings.model_copy(update={"home": home})
    restored = fsml_json({**env, "FSML_HOME": str(home)}, "restore", str(archive))
    assert restored["from_home"] == str(champion.settings.home) and restored["paths_moved"] > 0
    old = str(champion.settings.home)
    with sqlite3.connect(home / "mlflow" / "mlflow.db") as con:
        for table, column in (("runs", "artifact_uri"), ("experiments", "artifact_location"),
                              ("logged_models", "artifact_location")):  # fmt: skip
            values = [r[0] for r in con.execute(f"SELECT {column} FROM {table}")]
            assert any(str(home) in v for v in values) and not any(old in v for v in values), (table, values)

    with ServerProcess(restored_settings) as again:
        model = httpx.get(again.url + "/v1/model").json()
        answer = httpx.post(again.url + "/v1/predict", json=BODY).json()
    assert model["version"] == champion.outcome.registered.version and model["alias"] == "champion"
    assert answer["score"] == pytest.approx(original["score"], abs=1e-12)


def test_restore_refuses_a_used_home_and_a_damaged_archive(champion: Champion, tmp_path: Path) -> None:
    from fsml.backup import backup, restore

    archive = Path(backup(champion.settings, tmp_path / "b.tar.gz")["archive"])
    with pytest.raises(FsmlError, match="not empty"):
        restore(champion.settings, archive)
    damaged = tmp_path / "damaged.tar.gz"
    with tarfile.open(archive) as src, tarfile.open(damaged, "w:gz") as dst:
        for member in src.getmembers():
            data = src.extractfile(member) if member.isfile() else None
            if member.name == "./mlflow/mlflow.db":
                content = data.read()[:-10] + b"0123456789"
                member.size = len(content)
                import io

                data = io.BytesIO(content)
            dst.addfile(member, data)
    target = champion.settings.model_copy(update={"home": tmp_path / "new"})
    with pytest.raises(FsmlError, match="damaged"):
        restore(target, damaged)
    assert not (tmp_path / "new").exists() or not any((tmp_path / "new").iterdir())
    assert os.listdir(tmp_path) and not any(p.name.startswith("tmp") for p in tmp_path.iterdir())
