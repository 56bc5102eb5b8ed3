"""The fraud example's commands on ``fsml``: ``fsml data generate`` and ``fsml demo``.

The CLI never imports the example (imports only go down, and the examples sit above the
platform); it finds these commands through the ``fsml.commands`` entry point in
``pyproject.toml`` and calls ``register`` with its app.
"""

from __future__ import annotations

from typing import Annotated

import typer
from fsml.cli.app import JSON_HELP, load_settings, parse_date

from fsml.console import emit, steps
from fsml.errors import FsmlError

data_app = typer.Typer(help="Synthetic card-transaction data.", no_args_is_help=True)


@data_app.command("generate")
def generate(
    customers: Annotated[int, typer.Option(min=1, help="Number of customers.")] = 2_000,
    merchants: Annotated[int, typer.Option(min=10, help="Number of merchants.")] = 300,
    days: Annotated[int, typer.Option(min=1, help="Days of transactions.")] = 90,
    end_date: Annotated[str | None, typer.Option(help="Last day (exclusive), YYYY-MM-DD; default today UTC.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed: same arguments, same bytes.")] = 42,
    drift_start_day: Annotated[
        int | None, typer.Option(min=0, help="Day from which data and concept drift start.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Generate customers, merchants and transactions with late fraud labels under FSML_HOME."""
    settings = load_settings()

    from fsml.examples.fraud.synthetic import GeneratorConfig, save
    from fsml.examples.fraud.synthetic import generate as draw

    try:
        config = GeneratorConfig(
            customers=customers,
            merchants=merchants,
            days=days,
            end_date=parse_date(end_date, "--end-date"),
            seed=seed,
            drift_start_day=drift_start_day,
        )
    except ValueError as exc:
        raise FsmlError(str(exc)) from None
    with steps("generate", 2) as step:
        step("drawing transactions")
        data = draw(config)
        step("writing Parquet")
        meta = save(data, config, settings.raw_dir)
    emit({"directory": str(settings.raw_dir), **meta}, as_json)


def demo() -> None:
    """Generate data, build and register features, train, promote; print where results are."""
    from fsml.examples.fraud.demo import run_demo

    run_demo(load_settings())


def register(app: typer.Typer) -> None:
    """Add the example's commands to the ``fsml`` app."""
    app.add_typer(data_app, name="data")
    app.command()(demo)
