"""The ``fsml`` command: one Typer app grouping a command per lifecycle stage.

Each command parses its options, loads the settings, calls one stage function and prints the
result. Problems the user can fix (``FsmlError``, bad settings) end as one ``error:`` line on
stderr and a non-zero exit; nothing else is printed.
"""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime
from typing import Any

import typer
from pydantic import ValidationError
from typer.exceptions import TyperException

from fsml.console import err, setup_logging
from fsml.errors import FsmlError
from fsml.settings import Settings
from fsml.signals import Terminated, terminate_as_exception

app = typer.Typer(
    name="fsml",
    help="Feature-store-centric ML: data, features, training, promotion, serving, monitoring.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Help texts are plain text: with Rich markup, "[start, end]" or "logs|offline" vanish.
    rich_markup_mode=None,
)
features_app = typer.Typer(help="Feature tables, Feast registry and online store.", no_args_is_help=True)
app.add_typer(features_app, name="features")

JSON_HELP = "Print one JSON object as the last line of output."
FEATURE_SERVICE_HELP = "Model of this feature service; default FSML_FEATURE_SERVICE."


class ConfigError(FsmlError):
    exit_code = 2


def version_text() -> str:
    from importlib.metadata import version

    return (
        f"fsml {version('fsml')} (feast {version('feast')}, mlflow {version('mlflow')}, lightgbm {version('lightgbm')})"
    )


def _show_version(value: bool) -> None:
    if value:
        print(version_text())
        raise typer.Exit()


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging."),
    version: bool = typer.Option(
        False,
        "--version",
        is_eager=True,
        expose_value=False,
        callback=_show_version,
        help="Print the version and exit.",
    ),
) -> None:
    setup_logging(verbose)


def load_settings(**overrides: Any) -> Settings:
    """The process's settings; an invalid value is reported with the variable that holds it."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for e in exc.errors():
            field = str(e["loc"][0]) if e["loc"] else "settings"
            var = "REDIS_URL" if field == "redis_url" else f"FSML_{field.upper()}"
            problems.append(f"{var}={e.get('input')!r}: {e['msg']}")
        raise ConfigError("invalid setting " + "; ".join(problems)) from None


def parse_time(value: str | None, option: str) -> datetime | None:
    """ISO date or date-time; a value without a time zone is UTC."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"{option}: {value!r} is not an ISO date or date-time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_date(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"{option}: {value!r} is not an ISO date (YYYY-MM-DD)") from None


def main() -> None:
    import fsml.cli  # noqa: F401  (registers the commands)

    terminate_as_exception()
    try:
        # Not standalone: usage errors reach us and are printed as one line like the others.
        code = app(prog_name="fsml", standalone_mode=False)
    except FsmlError as exc:
        _fail(exc.message, exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        _fail("interrupted", 130)
    except Terminated as exc:
        _fail(str(exc), Terminated.exit_code)
    except TyperException as exc:  # usage errors: bad option values, unknown commands
        ctx = getattr(exc, "ctx", None)
        hint = f" (see: {ctx.command_path} --help)" if ctx is not None else ""
        _fail(
            (exc.format_message() if hasattr(exc, "format_message") else str(exc)) + hint,
            getattr(exc, "exit_code", 2),
        )
    sys.exit(code if isinstance(code, int) else 0)


def _fail(message: str, code: int) -> None:
    err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True, markup=True)
    sys.exit(code)
