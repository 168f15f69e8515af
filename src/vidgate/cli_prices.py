"""``vidgate usage``: a project's usage, as ``GET /v1/usage`` answers it, through the
database (a table; ``--json`` the API's JSON, ``--csv`` its CSV). ``vidgate prices``:
a project's price overrides, as ``/v1/admin/price_overrides`` manages them, audited
with the actor ``cli``."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from pydantic import ValidationError
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncEngine

from vidgate.accounts.keys import DEFAULT_TENANT
from vidgate.cli import (
    DataDir,
    _checked,
    _print_table,
    _settings,
    _with_database,
    app,
    err,
    out,
)
from vidgate.config import Settings
from vidgate.core.errors import InvalidParameter, VidgateError
from vidgate.core.pricing import PriceOverride
from vidgate.core.project_prices import load_project_prices
from vidgate.core.usage import UsageReport, csv_text, parse_query, report, usage_json
from vidgate.db.audit import CLI_ACTOR
from vidgate.db.project_names import find_project
from vidgate.db.usage import usage_rows
from vidgate.engine.service import Principal
from vidgate.logging import configure_logging
from vidgate.services.prices import PriceService

T = TypeVar("T")


@app.command()
def usage(
    tenant: Annotated[str, typer.Option(help="The project (its name or id).")] = DEFAULT_TENANT,
    start: Annotated[
        str | None, typer.Option(help="First UTC day, YYYY-MM-DD (default: this month's first).")
    ] = None,
    end: Annotated[
        str | None, typer.Option(help="Last UTC day, included (default: today).")
    ] = None,
    group_by: Annotated[
        str | None, typer.Option("--group-by", help="Comma-separated: model, key, day.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the API's JSON.")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV.")] = False,
    data_dir: DataDir = None,
) -> None:
    """What a project's completed jobs produced and cost, live and test apart."""
    if as_json and as_csv:
        err.print("give --json or --csv, not both")
        raise typer.Exit(2)
    try:
        query = parse_query(start, end, group_by, today=dt.datetime.now(dt.UTC).date())
    except InvalidParameter as exc:
        err.print(f"--{(exc.param or '').replace('_', '-')}: {exc.message}", highlight=False)
        raise typer.Exit(2) from None
    settings = _settings(data_dir)
    configure_logging("WARNING")

    async def work(db: AsyncEngine) -> UsageReport | None:
        async with db.connect() as conn:
            project = await find_project(conn, tenant)
            if project is None:
                return None
            return report(project[0], query, await usage_rows(conn, project[0], query))

    found = _with_database(settings, work)
    if found is None:
        err.print(f"no project {tenant!r}", highlight=False)
        raise typer.Exit(1)
    if as_json:
        typer.echo(json.dumps(usage_json(found), indent=2))
    elif as_csv:
        typer.echo(csv_text(found.data), nl=False)
    else:
        _print_usage(found)


def _print_usage(found: UsageReport) -> None:
    table = Table("day", "model", "key_id", "mode", "count", "seconds", "cost (USD)")
    for row in found.data:
        table.add_row(
            row.day.isoformat() if row.day else "",
            row.model or "",
            row.key_id or "",
            row.mode,
            str(row.count),
            str(row.seconds),
            "unknown" if row.cost is None else f"{row.cost:.6f}",
        )
    out.print(f"usage of {found.project_id}, {found.start} to {found.end} (UTC days)")
    _print_table(table)
    for name, total in (("total", found.total), ("test_total", found.test_total)):
        out.print(
            f"{name}: {total.count} video(s), {total.seconds} s, {total.cost:.6f} USD",
            highlight=False,
        )


prices_app = typer.Typer(no_args_is_help=True, help="A project's price overrides per model.")
app.add_typer(prices_app, name="prices")

Tenant = Annotated[str, typer.Option("--tenant", help="The project (its name or id).")]


def _operator(project_id: str) -> Principal:
    """The CLI acts with the host's rights, an operator's, and is audited as ``cli``."""
    return Principal(CLI_ACTOR, project_id, "live", "operator")


def _prices(settings: Settings, work: Callable[[PriceService], Awaitable[T]]) -> T:
    """``work`` on the prices service of this configuration (the models file as
    ``serve`` reads it), errors as the API words them."""
    report = _checked(settings)
    assert report.catalog is not None
    catalog = report.catalog
    file_prices = load_project_prices(settings.models_file, catalog)

    async def run(db: AsyncEngine) -> T:
        return await work(PriceService(db, catalog, file_prices))

    try:
        return _with_database(settings, run)
    except VidgateError as exc:
        err.print(f"error: {exc.message}", highlight=False)
        raise typer.Exit(1) from None


@prices_app.command("list")
def prices_list(tenant: Tenant = DEFAULT_TENANT, data_dir: DataDir = None) -> None:
    """The overrides that apply to a project: set here or by the API ("api"), or in
    the models file ("file")."""
    settings = _settings(data_dir)
    configure_logging("WARNING")
    found = _prices(settings, lambda service: service.list(_operator(tenant), tenant))
    table = Table("model", "multiplier", "pricing", "source")
    for record in found:
        override = record.override
        table.add_row(
            record.model,
            "" if override.multiplier is None else f"{override.multiplier.normalize():f}",
            ""
            if override.pricing is None
            else override.pricing.model_dump_json(exclude_defaults=True),
            record.source,
        )
    _print_table(table)


@prices_app.command("set")
def prices_set(
    model: Annotated[str, typer.Option("--model", help="The model (id or alias).")],
    tenant: Tenant = DEFAULT_TENANT,
    multiplier: Annotated[
        str | None, typer.Option("--multiplier", help="Of the list price, e.g. 0.8.")
    ] = None,
    pricing: Annotated[
        str | None,
        typer.Option(
            "--pricing", help='A table of its own, JSON: \'{"per_second": {"720p": 0.05}}\'.'
        ),
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Set a project's price of a model (replacing the one set before)."""
    try:
        override = PriceOverride.model_validate(
            {
                "multiplier": multiplier,
                "pricing": None if pricing is None else json.loads(pricing),
            }
        )
    except (ValueError, ValidationError) as exc:
        err.print(f"error: {exc}", highlight=False)
        raise typer.Exit(2) from None
    settings = _settings(data_dir)
    configure_logging("WARNING")
    found = _prices(
        settings, lambda service: service.put(_operator(tenant), model, override, project=tenant)
    )
    out.print(f"set the price of {found.model} for project {found.project_id}", highlight=False)


@prices_app.command("delete")
def prices_delete(
    model: Annotated[str, typer.Option("--model", help="The model (id or alias).")],
    tenant: Tenant = DEFAULT_TENANT,
    data_dir: DataDir = None,
) -> None:
    """Remove a project's override of a model set here or by the API."""
    settings = _settings(data_dir)
    configure_logging("WARNING")
    _prices(settings, lambda service: service.delete(_operator(tenant), model, project=tenant))
    out.print(f"removed the price override of {model}", highlight=False)
