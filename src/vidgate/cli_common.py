"""What the CLI's commands share: the data directory option, settings, consoles,
tables, the configuration check and a database to work on.

``cli.py`` re-exports them under these names, which the command modules beside it
(``cli_prices.py``, ``cli_hooks.py``, ...) import from there."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncEngine

from vidgate.config import Settings
from vidgate.db.database import create_engine

if TYPE_CHECKING:
    from vidgate.providers.check import CheckReport

out = Console()
err = Console(stderr=True)
T = TypeVar("T")

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir", envvar="VIDGATE_DATA_DIR", help="Where vidgate keeps its database and media."
    ),
]


def _settings(data_dir: Path | None, **overrides: object) -> Settings:
    values = {k: v for k, v in overrides.items() if v is not None}
    if data_dir is not None:
        values["data_dir"] = data_dir
    return Settings(**values)  # type: ignore[arg-type]


def _print_table(table: Table) -> None:
    """On a terminal, fit its width; piped, print at full width (rich would assume 80
    columns and cut the ids that ``keys revoke`` and ``--model`` need)."""
    if out.is_terminal:
        out.print(table)
    else:
        width = Measurement.get(out, out.options.update_width(1000), table).maximum
        Console(file=out.file, width=width).print(table)


def _checked(settings: Settings, *, probe: bool = False) -> CheckReport:
    """The configuration as ``serve`` loads it (``vidgate.providers.check``), or a clean
    exit (status 2) naming each mistake: file, line, accepted values."""
    from vidgate.providers.check import run_check

    report = run_check(settings, probe=probe)
    if report.errors and not probe:
        err.print("[red]the configuration is invalid:[/red]")
        for error in report.errors:
            typer.echo(f"  {error}", err=True)
        raise typer.Exit(2)
    return report


def _with_database(settings: Settings, work: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    """Run ``work`` against the data directory's database, started or attached to."""
    from vidgate.runtime import prepare_database

    async def main() -> T:
        url = await prepare_database(settings)
        db = create_engine(url, pool_size=1)
        try:
            return await work(db)
        finally:
            await db.dispose()

    return asyncio.run(main())
