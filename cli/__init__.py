"""Command-line interface; importing this package registers every command on ``app``.

Commands of the examples (which sit above the platform and are never imported by it) come
through the ``fsml.commands`` entry points: each is a function taking the app.
"""

from importlib.metadata import entry_points

from fsml.cli import backup, demo, features, model, monitor, push, serve  # noqa: F401
from fsml.cli.app import app, main

for _plugin in sorted(entry_points(group="fsml.commands"), key=lambda e: e.name):
    _plugin.load()(app)

__all__ = ["app", "main"]
