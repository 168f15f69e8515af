"""``vidgate budgets``: set, list and delete budgets through the database, as the admin
API does (services/budgets.py), each change in the audit log with the actor ``cli``.

``cli.py`` imports this module at its end, once the helpers used here are defined, and
it registers itself on ``app``: import ``vidgate.cli``, not this module, first."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncEngine

from vidgate.cli import DataDir, _print_table, _settings, _with_database, app, err, out
from vidgate.core.budgets import (
    DEFAULT_PERIOD,
    MAX_USD,
    PERIODS,
    USD_PLACES,
    BudgetStatus,
    Period,
    usd_text,
)
from vidgate.core.errors import VidgateError
from vidgate.db.audit import CLI_ACTOR
from vidgate.logging import configure_logging

if TYPE_CHECKING:
    from vidgate.services.budgets import BudgetService

budgets_app = typer.Typer(
    no_args_is_help=True,
    help="Cap what a project, or one of its keys, spends per UTC day, month or in all.",
)
app.add_typer(budgets_app, name="budgets")


def _usd(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        value = Decimal("NaN")
    if (
        not value.is_finite()
        or value < 0
        or value > MAX_USD
        or -value.as_tuple().exponent > USD_PLACES  # type: ignore[operator]
    ):
        err.print(
            f"--usd must be an amount in USD from 0 to {MAX_USD}, with at most"
            f" {USD_PLACES} decimal places; got {text!r}"
        )
        raise typer.Exit(2)
    return value


def _period(text: str) -> Period:
    for period in PERIODS:
        if period == text:
            return period
    err.print(f"--period must be one of {', '.join(PERIODS)}; got {text!r}")
    raise typer.Exit(2)


async def _tenant(service: BudgetService, name: str) -> str:
    tenant_id = await service.tenant_named(name)
    if tenant_id is None:
        err.print(f"no project named {name!r}")
        raise typer.Exit(1)
    return tenant_id


def _describe(status: BudgetStatus) -> str:
    budget = status.budget
    scope = f"key {budget.api_key_id}" if budget.api_key_id else "project"
    return (
        f"{budget.period} budget of {scope} in {budget.tenant_name}:"
        f" {usd_text(budget.usd)} USD ({budget.id});"
        f" {usd_text(status.spent)} USD spent or reserved in the current period"
    )


@budgets_app.command("set")
def budgets_set(
    tenant: Annotated[str, typer.Option("--tenant", help="The project (tenant) by name.")],
    usd: Annotated[str, typer.Option("--usd", help="The cap in USD, e.g. 25 or 12.50.")],
    period: Annotated[
        str,
        typer.Option("--period", help="day, month (UTC calendar) or total."),
    ] = DEFAULT_PERIOD,
    key: Annotated[
        str | None,
        typer.Option("--key", help="A key id of the project: cap that key, not the project."),
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Set (or change) the budget of a project, or of one of its keys, for a period."""
    amount, chosen = _usd(usd), _period(period)
    settings = _settings(data_dir)
    configure_logging("WARNING")

    async def work(db: AsyncEngine) -> tuple[BudgetStatus, bool]:
        from vidgate.services.budgets import BudgetService

        service = BudgetService(db)
        tenant_id = await _tenant(service, tenant)
        return await service.set(tenant_id, usd=amount, period=chosen, key_id=key, actor=CLI_ACTOR)

    try:
        status, created = _with_database(settings, work)
    except VidgateError as exc:
        err.print(exc.message)
        raise typer.Exit(1) from None
    out.print(("Created the " if created else "Set the ") + _describe(status) + ".")


@budgets_app.command("list")
def budgets_list(
    tenant: Annotated[
        str | None, typer.Option("--tenant", help="One project by name (default: all).")
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """List budgets, with what counts against each in its current period."""
    settings = _settings(data_dir)
    configure_logging("WARNING")

    async def work(db: AsyncEngine) -> list[BudgetStatus]:
        from vidgate.services.budgets import BudgetService

        service = BudgetService(db)
        tenant_id = None if tenant is None else await _tenant(service, tenant)
        return await service.list(tenant_id)

    found = _with_database(settings, work)
    table = Table("id", "tenant", "key", "period", "usd", "spent", "remaining", "since")
    for status in found:
        budget, start = status.budget, status.window.start
        table.add_row(
            budget.id,
            budget.tenant_name,
            budget.api_key_id or "",
            budget.period,
            usd_text(budget.usd),
            usd_text(status.spent),
            usd_text(status.remaining),
            start.strftime("%Y-%m-%d") if start else "",
        )
    _print_table(table)


@budgets_app.command("delete")
def budgets_delete(budget_id: str, data_dir: DataDir = None) -> None:
    """Delete a budget by id: its scope is no longer capped for its period."""
    settings = _settings(data_dir)
    configure_logging("WARNING")

    async def work(db: AsyncEngine) -> None:
        from vidgate.services.budgets import BudgetService

        await BudgetService(db).delete(budget_id, None, actor=CLI_ACTOR)

    try:
        _with_database(settings, work)
    except VidgateError as exc:
        err.print(exc.message)
        raise typer.Exit(1) from None
    out.print(f"deleted {budget_id}")
