"""A user's Feast repo as fsml runs it: its own config, made to fit the platform.

fsml takes a repo as it is, wherever the command runs. Its ``feature_store.yaml`` is read with
``${VAR}`` expanded (as Feast does) and then adjusted in memory, never on disk:

- the project is the repo's own name with the environment as a suffix (``drivers`` becomes
  ``drivers_dev``), so dev, staging and prod never share registry objects or Redis keys;
- the online store is the platform's Redis (``REDIS_URL``, a Redis Cluster when
  ``FSML_REDIS_TYPE=redis_cluster``), whatever the repo names (the scoring service reads
  Feast's Redis layout directly); a Redis store's own options are kept;
- a file-based offline store (Feast's default ``file``, ``dask`` or ``duckdb``) becomes fsml's
  DuckDB store, and the ``local`` batch engine fsml's engine: same semantics, faster paths;
- relative paths (registry, sources) resolve against the repo's directory, as Feast resolves
  them when run from inside the repo.

``fsml env`` writes this effective config to a file the plain ``feast`` CLI reads through
``FEAST_FS_YAML_FILE_PATH``.
"""

from __future__ import annotations

import os
import re
import sys
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from fsml.errors import FsmlError

if TYPE_CHECKING:
    from feast import FeatureStore

    from fsml.settings import Settings

OFFLINE = "fsml.stores.duckdb.DuckDBOfflineStore"
ENGINE = "fsml.stores.engine.FsmlComputeEngine"
ONLINE = "fsml.stores.redis.RedisOnlineStore"
FILE_OFFLINE_STORES = {None, "file", "dask", "duckdb", OFFLINE}
REDIS_STORES = {"redis", ONLINE, "feast.infra.online_stores.redis.RedisOnlineStore"}


VARIABLE = re.compile(r"\$(\w+|\{[^}]*\})", re.ASCII)  # posixpath.expandvars' pattern


def expand(text: str, environ: dict[str, str]) -> str:
    """``os.path.expandvars`` (what Feast applies to the file) with ``environ`` for the process
    environment: ``$VAR`` and ``${VAR}`` replaced, unknown names left as they are."""

    def value(match: re.Match[str]) -> str:
        name = match[1].strip("{}")
        return environ.get(name, match[0])

    return VARIABLE.sub(value, text)


@lru_cache(maxsize=32)
def _read_yaml(path: Path, mtime_ns: int, environ: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(expand(path.read_text(), dict(environ)))
    except (OSError, yaml.YAMLError) as exc:
        raise FsmlError(f"cannot read {path}: {str(exc).splitlines()[0]}") from None
    if not isinstance(raw, dict) or not raw.get("project"):
        raise FsmlError(f"{path} names no project")
    return raw


def raw_config(repo: Path, environ: dict[str, str]) -> dict[str, Any]:
    """The repo's ``feature_store.yaml`` with variables expanded (a fresh copy each call)."""
    path = repo / "feature_store.yaml"
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        raise FsmlError(f"feature repo {repo} has no feature_store.yaml") from None
    merged = {**os.environ, **environ}
    return yaml.safe_load(yaml.safe_dump(_read_yaml(path, mtime, tuple(sorted(merged.items())))))


def project_name(repo: Path, environ: dict[str, str], env: str) -> str:
    """The repo's own project name with the environment as a suffix."""
    return f"{raw_config(repo, environ)['project']}_{env}"


def effective_config(settings: Settings) -> dict[str, Any]:
    """The repo's config as fsml uses it (see the module docstring)."""
    repo = settings.feature_repo
    raw = raw_config(repo, settings.feast_environ())
    raw["project"] = settings.feast_project
    raw["registry"] = _registry(raw.get("registry"), repo)
    raw["online_store"] = _online_store(raw.get("online_store"), settings.redis_url, settings.redis_type)
    offline = raw.get("offline_store")
    offline_type = offline.get("type") if isinstance(offline, dict) else offline
    if offline_type in FILE_OFFLINE_STORES:
        raw["offline_store"] = {"type": OFFLINE}
        # fsml's store makes entity times UTC without copying the frame (fsml/stores/duckdb.py)
        raw["coerce_tz_aware"] = False
        engine = raw.get("batch_engine")
        if (engine.get("type") if isinstance(engine, dict) else engine) in (None, "local", ENGINE):
            raw["batch_engine"] = {"type": ENGINE}
    raw.setdefault("entity_key_serialization_version", 3)
    return raw


def _registry(registry: Any, repo: Path) -> Any:
    config = {"path": registry} if isinstance(registry, str) else dict(registry or {"path": "data/registry.db"})
    is_file = config.get("registry_type", "file") == "file"
    path = config.get("path", "")
    if is_file and path and "://" not in path and not Path(path).is_absolute():
        config["path"] = str(repo / path)
    return config


def _online_store(online: Any, redis_url: str, redis_type: str) -> dict[str, Any]:
    """The platform's Redis (one server, or a Redis Cluster with ``FSML_REDIS_TYPE``); a Redis
    store's own options (key TTL, dedup) are kept."""
    keep = dict(online) if isinstance(online, dict) and online.get("type") in REDIS_STORES else {}
    keep.pop("redis_type", None)  # the platform's setting decides, for Feast and the serving client alike
    cluster = {"redis_type": redis_type} if redis_type != "redis" else {}
    return {**keep, "type": ONLINE, "connection_string": redis_url, **cluster}


def open_store(settings: Settings) -> FeatureStore:
    """The repo's feature store with the effective config, from any working directory."""
    settings.export()
    from feast import FeatureStore, RepoConfig

    repo = settings.feature_repo
    try:
        config = RepoConfig(**effective_config(settings))
        config.repo_path = repo
        return FeatureStore(repo_path=str(repo), config=config)
    except FsmlError:
        raise
    except Exception as exc:  # Feast raises many types for a bad yaml; one line is enough here
        raise FsmlError(f"cannot load feature repo {repo}: {str(exc).strip().splitlines()[0]}") from None


def write_effective_yaml(settings: Settings) -> Path:
    """The effective config as a file, for the plain ``feast`` CLI (``FEAST_FS_YAML_FILE_PATH``)."""
    from fsml import atomic

    path = settings.home / "feast" / f"feature_store_{settings.env}.yaml"
    header = f"# Written by fsml from {settings.feature_repo / 'feature_store.yaml'}; do not edit.\n"
    atomic.write_text(path, header + yaml.safe_dump(effective_config(settings), sort_keys=False))
    return path


def apply_repo(settings: Settings) -> str:
    """Register every object of the feature repo, as ``feast apply`` does; return the diff.

    A ``Project`` object the repo declares names the repo's own project: its description and
    tags are kept, under the environment's project name.
    """
    from feast import Project
    from feast.repo_operations import extract_objects_for_apply_delete

    (settings.home / "feast").mkdir(parents=True, exist_ok=True)
    store = open_store(settings)
    repo = parse_repo(settings.feature_repo)
    declared = repo.projects[0] if repo.projects else None
    repo.projects[:] = [
        Project(
            name=store.project,
            description=declared.description if declared else "",
            tags=declared.tags if declared else {},
        )
    ]
    registry_diff, _, _ = store.plan(repo)
    to_apply, to_delete, _, _ = extract_objects_for_apply_delete(store.project, store.registry, repo)
    store.apply(to_apply, objects_to_delete=to_delete, partial=False)
    return registry_diff.to_string()


def parse_repo(repo_path: Path):
    """Feast's ``parse_repo`` run the way its CLI runs it: from inside the repo directory.

    Feast names repo modules relative to the working directory and imports them; modules from a
    previous parse are dropped first so that definitions read the current environment.
    """
    from feast.repo_operations import get_repo_files
    from feast.repo_operations import parse_repo as feast_parse_repo

    names = {p.relative_to(repo_path).with_suffix("").as_posix().replace("/", ".") for p in get_repo_files(repo_path)}
    for name in names:
        sys.modules.pop(name, None)
    previous = os.getcwd()
    sys.path.insert(0, str(repo_path))
    try:
        os.chdir(repo_path)
        return feast_parse_repo(repo_path)
    except Exception as exc:  # an error in the user's definitions: say which repo, in one line
        raise FsmlError(f"cannot load the definitions of {repo_path}: {type(exc).__name__}: {exc}") from exc
    finally:
        os.chdir(previous)
        sys.path.remove(str(repo_path))
