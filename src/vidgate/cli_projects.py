"""``vidgate projects``: create and list projects (the tenants of ``--tenant``), through
the database; each creation is audited as the CLI's."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Column, Table
from sqlalchemy.ext.asyncio import AsyncEngine

from vidgate.accounts.projects import create_project
from vidgate.cli_common import DataDir, _print_table, _settings, _with_database, err, out
from vidgate.core.access import check_project_name
from vidgate.core.errors import InvalidParameter
from vidgate.core.keys import KeyRecord, ProjectRecord
from vidgate.db.keys import list_keys, list_tenants
from vidgate.logging import configure_logging

projects_app = typer.Typer(no_args_is_help=True, help="Projects (tenants) and their limits.")


@projects_app.command("create")
def projects_create(
    name: Annotated[str, typer.Argument(help="The project's name (--tenant of keys create).")],
    data_dir: DataDir = None,
) -> None:
    """Create a project."""
    try:
        check_project_name(name)
    except InvalidParameter as exc:
        err.print(exc.message, highlight=False)
        raise typer.Exit(2) from None
    settings = _settings(data_dir)
    configure_logging("WARNING")

    async def work(db: AsyncEngine) -> ProjectRecord | None:
        async with db.begin() as conn:
            return await create_project(conn, name)

    made = _with_database(settings, work)
    if made is None:
        err.print(f"a project named {name!r} exists already", highlight=False)
        raise typer.Exit(1)
    out.print(f"Created project {made.name} ({made.id}).", highlight=False)


@projects_app.command("list")
def projects_list(data_dir: DataDir = None) -> None:
    """List projects and how many unrevoked keys each has."""
    settings = _settings(data_dir)
    configure_logging("WARNING")

    async def work(db: AsyncEngine) -> tuple[list[ProjectRecord], list[KeyRecord]]:
        async with db.connect() as conn:
            return await list_tenants(conn), await list_keys(conn)

    projects, keys = _with_database(settings, work)
    table = Table(Column("id", no_wrap=True), Column("name", no_wrap=True), "created", "keys")
    for p in projects:
        active = sum(k.tenant_id == p.id and k.revoked_at is None for k in keys)
        table.add_row(p.id, p.name, p.created_at.strftime("%Y-%m-%d %H:%M"), str(active))
    _print_table(table)
