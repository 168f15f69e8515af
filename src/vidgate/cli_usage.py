"""``vidgate usage``: a project's usage, as ``GET /v1/usage`` answers it, through the
database (a table; ``--json`` the API's JSON, ``--csv`` its CSV)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncEngine

from vidgate.accounts.keys import DEFAULT_TENANT
from vidgate.cli import DataDir, _print_table, _settings, _with_database, app, err, out
from vidgate.core.errors import InvalidParameter
from vidgate.core.usage import UsageReport, csv_text, parse_query, report, usage_json
from vidgate.db.project_names import find_project
from vidgate.db.usage import usage_rows
from vidgate.logging import configure_logging


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
