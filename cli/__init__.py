"""Command-line interface; importing this package registers every command on ``app``."""

from fsml.cli import backup, data, demo, features, model, monitor, push, serve  # noqa: F401
from fsml.cli.app import app, main

__all__ = ["app", "main"]
