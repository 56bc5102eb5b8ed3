"""``fsml demo`` runs the platform's main job end to end; ``fsml env`` exports the settings."""

from __future__ import annotations

import shlex

from fsml.cli.app import app, load_settings


@app.command()
def env() -> None:
    """Print `export` lines so that the plain feast CLI sees the same repo configuration."""
    settings = load_settings()
    for key, value in settings.feast_environ().items():
        print(f"export {key}={shlex.quote(value)}")


@app.command()
def demo() -> None:
    """Generate data, build and register features, train, promote; print where results are."""
    from fsml.examples.fraud.demo import run_demo

    run_demo(load_settings())
