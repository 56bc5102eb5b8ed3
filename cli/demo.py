"""``fsml demo`` runs the platform's main job end to end; ``fsml env`` exports the settings."""

from __future__ import annotations

import shlex

from fsml.cli.app import app, load_settings


@app.command()
def env() -> None:
    """Print `export` lines so that the plain feast CLI sees the repo as fsml does.

    The repo's config as fsml uses it (the environment's project, Redis at REDIS_URL, fsml's
    stores) is written to a file under FSML_HOME; FEAST_FS_YAML_FILE_PATH points Feast at it.
    """
    settings = load_settings()

    from fsml.repo import write_effective_yaml

    environ = {**settings.feast_environ(), "FEAST_FS_YAML_FILE_PATH": str(write_effective_yaml(settings))}
    for key, value in environ.items():
        print(f"export {key}={shlex.quote(value)}")
