"""Every command's ``--help`` renders its whole text, plainly; ``fsml --version`` answers."""

from __future__ import annotations

import re
from typing import Any

import pytest
import typer
from fsml.cli import app
from typer.testing import CliRunner

TTY_LIKE = {"FORCE_COLOR": "1", "TERM": "xterm-256color", "COLUMNS": "100"}


def _commands(group: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """(path, command) for the whole tree (Typer vendors its own click: duck-typed)."""
    found = [(path, group)]
    for name, command in getattr(group, "commands", {}).items():
        found += _commands(command, (*path, name))
    return found


COMMANDS = _commands(typer.main.get_command(app))


def _words(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=lambda x: " ".join(x) if isinstance(x, tuple) else "")
def test_help_renders_every_text_plainly(path: tuple[str, ...], command: Any) -> None:
    result = CliRunner().invoke(app, [*path, "--help"], prog_name="fsml", env=TTY_LIKE)
    assert result.exit_code == 0, result.output
    assert "\x1b[" not in result.output and not re.search(r"\[/?(bold|red|green)\]", result.output)
    shown = _words(result.output.replace("-\n", "-"))
    if command.help:
        assert _words(command.help.split("\n\n")[0]) in shown
    for param in command.params:
        if param.param_type_name == "option" and param.help:
            assert _words(param.help) in shown, (param.name, result.output)


def test_version() -> None:
    from importlib.metadata import version

    result = CliRunner().invoke(app, ["--version"], prog_name="fsml")
    assert result.exit_code == 0 and result.output.startswith(f"fsml {version('fsml')} ")
