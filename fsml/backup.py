"""``fsml backup`` and ``fsml restore``: FSML_HOME's state in one archive, taken while it runs.

What is kept: the MLflow store (SQLite, copied with SQLite's online backup API, so a write in
progress is either in the copy or not, never half) and the artifacts its models need; every
environment's Feast registry (read until it parses, as Feast rewrites it in place); the
prediction logs (files are renamed into place when complete, temporary ones are left out) and
the monitor's records. Raw and feature data are included on request (``--data``): they can be
large, and the feature tables can be rebuilt from the raw data.

A restore goes into an empty FSML_HOME: the archive is checked against its manifest, paths of
the old home recorded in the MLflow store and the Feast registries are moved to the new home,
and everything is put in place at once (a temporary folder renamed), so a failed restore
leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sqlite3
import tarfile
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fsml.errors import FsmlError
from fsml.settings import Settings

log = logging.getLogger(__name__)

MANIFEST = "fsml-backup.json"
FORMAT = 1
COPIED = ("logs/predictions", "monitoring")  # plain files, complete once renamed into place


def backup(settings: Settings, output: Path | None = None, data: bool = False) -> dict[str, Any]:
    """Write ``output`` (default ``FSML_HOME/backups/fsml-<time>.tar.gz``), atomically."""
    home = settings.home
    if not home.is_dir():
        raise FsmlError(f"nothing to back up: {home} does not exist")
    if settings.mlflow_tracking_uri is not None:
        raise FsmlError("FSML_MLFLOW_TRACKING_URI points to another MLflow store: back it up where it runs")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    output = (output or home / "backups" / f"fsml-{stamp}.tar.gz").resolve()
    with tempfile.TemporaryDirectory(dir=home) as tmp:
        staging = Path(tmp) / "home"
        staging.mkdir()
        _copy_mlflow(home, staging)
        _copy_registries(home, staging)
        for folder in (*COPIED, *(("data",) if data else ())):
            _copy_tree(home / folder, staging / folder)
        files = {str(p.relative_to(staging)): _sha256(p) for p in sorted(staging.rglob("*")) if p.is_file()}
        manifest = {
            "format": FORMAT,
            "created_at": datetime.now(UTC).isoformat(),
            "home": str(home),
            "includes_data": data,
            "files": files,
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2))
        output.parent.mkdir(parents=True, exist_ok=True)
        partial = output.with_name(f".{output.name}.partial")
        with tarfile.open(partial, "w:gz") as archive:
            archive.add(staging, arcname=".")
        os.replace(partial, output)
    log.info("backup of %s written to %s", home, output)
    return {"archive": str(output), "files": len(files), "bytes": output.stat().st_size, "includes_data": data}


def restore(settings: Settings, archive: Path) -> dict[str, Any]:
    """Unpack ``archive`` into FSML_HOME, which must be empty or missing."""
    home = settings.home
    if home.exists() and any(home.iterdir()):
        raise FsmlError(f"{home} is not empty: restore into a new FSML_HOME")
    if not archive.is_file():
        raise FsmlError(f"no backup archive at {archive}")
    home.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=home.parent) as tmp:
        staging = Path(tmp) / "home"
        with tarfile.open(archive, "r:gz") as unpacked:
            _extract(unpacked, staging)
        manifest = _checked_manifest(staging)
        old = manifest["home"]
        moved = _rehome_mlflow(staging / "mlflow" / "mlflow.db", old, str(home))
        moved += sum(_rehome_registry(p, old, str(home)) for p in (staging / "feast").glob("registry_*.db"))
        (staging / MANIFEST).unlink()
        home.mkdir(parents=True, exist_ok=True)
        for entry in staging.iterdir():
            os.replace(entry, home / entry.name)
    log.info("restored %s into %s", archive, home)
    return {"home": str(home), "files": len(manifest["files"]), "from_home": old, "paths_moved": moved}


def _extract(archive: tarfile.TarFile, into: Path) -> None:
    """Unpack only plain files and folders inside ``into``.

    Python's "data" filter does this from 3.11.4 on; Debian 12's 3.11.2 has no filters, so the
    same rule is checked here first (no absolute names, no "..", no links or devices)."""
    if hasattr(tarfile, "data_filter"):
        archive.extractall(into, filter="data")
        return
    root = into.resolve()
    members = archive.getmembers()
    for member in members:
        target = (root / member.name).resolve()
        if not (member.isfile() or member.isdir()) or (target != root and root not in target.parents):
            raise FsmlError(f"damaged backup archive: refusing member {member.name!r}")
    archive.extractall(into, members=members)


def _copy_mlflow(home: Path, staging: Path) -> None:
    source = home / "mlflow" / "mlflow.db"
    if not source.is_file():
        return
    (staging / "mlflow").mkdir()
    with (
        sqlite3.connect(f"file:{source}?mode=ro", uri=True) as src,
        sqlite3.connect(staging / "mlflow" / "mlflow.db") as dst,
    ):
        src.backup(dst)  # SQLite's online backup: a consistent copy while MLflow writes
    # Artifacts are written once under new run and model ids; copied after the database, every
    # model the copied database names is already complete on disk.
    _copy_tree(home / "mlflow" / "artifacts", staging / "mlflow" / "artifacts")


def _copy_registries(home: Path, staging: Path) -> None:
    from feast.protos.feast.core.Registry_pb2 import Registry as RegistryProto

    for registry in sorted((home / "feast").glob("registry_*.db")):
        for _ in range(20):  # Feast rewrites the file in place: read until it parses
            content = registry.read_bytes()
            try:
                RegistryProto().ParseFromString(content)
                break
            except Exception:  # noqa: BLE001  (protobuf's DecodeError)
                time.sleep(0.1)
        else:
            raise FsmlError(f"the Feast registry {registry} could not be read whole")
        target = staging / "feast" / registry.name
        target.parent.mkdir(exist_ok=True)
        target.write_bytes(content)


def _copy_tree(source: Path, target: Path) -> None:
    if not source.is_dir():
        return
    for path in sorted(source.rglob("*")):
        if path.is_file() and not path.name.startswith(".") and not path.name.endswith((".tmp", ".partial")):
            destination = target / path.relative_to(source)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, destination)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _checked_manifest(staging: Path) -> dict[str, Any]:
    path = staging / MANIFEST
    if not path.is_file():
        raise FsmlError("not an fsml backup: no manifest")
    manifest = json.loads(path.read_text())
    if manifest.get("format") != FORMAT:
        raise FsmlError(f"backup format {manifest.get('format')} is not {FORMAT}")
    for name, digest in manifest["files"].items():
        if not (staging / name).is_file() or _sha256(staging / name) != digest:
            raise FsmlError(f"the backup is damaged: {name} does not match its checksum")
    return manifest


def _rehome_mlflow(database: Path, old: str, new: str) -> int:
    """Point every location the MLflow store records under the old home to the new one."""
    if not database.is_file():
        return 0
    changed = 0
    with sqlite3.connect(database) as con:
        for table, column in _text_columns(con):
            for before, after in ((Path(old).as_uri(), Path(new).as_uri()), (old, new)):
                cursor = con.execute(
                    f'UPDATE "{table}" SET "{column}" = replace("{column}", ?, ?) WHERE "{column}" LIKE ?',
                    (before + "/", after + "/", f"%{before}/%"),
                )
                changed += cursor.rowcount
    return changed


def _text_columns(con: sqlite3.Connection) -> Iterator[tuple[str, str]]:
    for (table,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
        for row in con.execute(f'PRAGMA table_info("{table}")').fetchall():
            if row[2].upper().startswith(("VARCHAR", "TEXT", "CHAR")) or row[2] == "":
                yield table, row[1]


def _rehome_registry(path: Path, old: str, new: str) -> int:
    """File sources in a Feast registry name absolute paths: move those under the old home."""
    from feast.protos.feast.core.Registry_pb2 import Registry as RegistryProto

    registry = RegistryProto()
    registry.ParseFromString(path.read_bytes())
    changed = _replace_strings(registry, old + "/", new + "/")
    if changed:
        path.write_bytes(registry.SerializeToString())
    return changed


def _replace_strings(message: Any, old: str, new: str) -> int:
    """Replace a path prefix in every string field of a protobuf message, recursively."""
    changed = 0
    for field, value in message.ListFields():
        repeated = field.is_repeated
        if field.type == field.TYPE_MESSAGE:
            if field.message_type.GetOptions().map_entry:
                items = (
                    list(value.values())
                    if field.message_type.fields_by_name["value"].type == field.TYPE_MESSAGE
                    else []
                )
                changed += sum(_replace_strings(v, old, new) for v in items)
            else:
                changed += sum(_replace_strings(v, old, new) for v in (value if repeated else [value]))
        elif field.type == field.TYPE_STRING:
            if repeated:
                for i, text in enumerate(value):
                    if old in text:
                        value[i] = text.replace(old, new)
                        changed += 1
            elif old in value:
                setattr(message, field.name, value.replace(old, new))
                changed += 1
    return changed
