"""``vidgate webhook-endpoints``: a project's webhook endpoints, as
``/v1/webhook_endpoints`` manages them, through the database (audited with the actor
``cli``, which acts with an operator's reach)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from rich.table import Column, Table
from sqlalchemy.ext.asyncio import AsyncEngine

from vidgate.accounts.keys import DEFAULT_TENANT
from vidgate.cli import DataDir, _print_table, _settings, _with_database, app, err, out
from vidgate.core.errors import NotFound, VidgateError
from vidgate.core.webhook_endpoints import EVENTS, EndpointRecord, NewSecret
from vidgate.db.audit import CLI_ACTOR
from vidgate.db.project_names import find_project
from vidgate.engine.service import Principal
from vidgate.logging import configure_logging
from vidgate.services.webhook_endpoints import EndpointService

T = TypeVar("T")

hooks_app = typer.Typer(
    no_args_is_help=True,
    help="Create, list, rotate and delete a project's webhook endpoints; read deliveries.",
)
app.add_typer(hooks_app, name="webhook-endpoints")

Tenant = Annotated[str, typer.Option("--tenant", help="The project (its name or id).")]


def _run(
    data_dir: DataDir,
    tenant: str | None,
    work: Callable[[EndpointService, Principal], Awaitable[T]],
) -> T:
    """``work`` with the service and the CLI's principal (in ``tenant``, when given)."""
    settings = _settings(data_dir)
    configure_logging("WARNING")

    async def main(db: AsyncEngine) -> T:
        tenant_id = ""
        if tenant is not None:
            async with db.connect() as conn:
                found = await find_project(conn, tenant)
            if found is None:
                raise NotFound(f"no project named {tenant!r}", code="project_not_found")
            tenant_id = found[0]
        principal = Principal(CLI_ACTOR, tenant_id, "live", "operator")
        return await work(EndpointService(db, settings), principal)

    try:
        return _with_database(settings, main)
    except VidgateError as exc:
        err.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(1) from None


def _print_secret(made: NewSecret, verb: str) -> None:
    e = made.endpoint
    out.print(f"{verb} webhook endpoint {e.id} ({e.url}) for project {e.tenant_id}.")
    out.print("Store the signing secret now; it is not shown again:")
    print(made.secret)


@hooks_app.command("create")
def create(
    url: Annotated[str, typer.Option("--url", help="Where events are POSTed.")],
    events: Annotated[
        str, typer.Option("--events", help=f"Comma-separated, of: {', '.join(EVENTS)}.")
    ],
    tenant: Tenant = DEFAULT_TENANT,
    data_dir: DataDir = None,
) -> None:
    """Register an endpoint and print its signing secret (last line; shown once)."""
    chosen = [e.strip() for e in events.split(",") if e.strip()]
    unknown = [e for e in chosen if e not in EVENTS]
    if unknown or not chosen:
        err.print(f"--events takes a comma-separated list of: {', '.join(EVENTS)}")
        raise typer.Exit(2)
    made = _run(
        data_dir,
        tenant,
        lambda svc, who: svc.create(
            who, url=url, events=chosen, project=who.tenant_id, remote_addr=None
        ),
    )
    _print_secret(made, "Created")


@hooks_app.command("list")
def list_(tenant: Tenant = DEFAULT_TENANT, data_dir: DataDir = None) -> None:
    """List the project's endpoints (never their secrets)."""
    found: list[EndpointRecord] = _run(
        data_dir, tenant, lambda svc, who: svc.list_endpoints(who, project=who.tenant_id)
    )
    table = Table(Column("id", no_wrap=True), "url", "events", "status", "created")
    for e in found:
        status = f"disabled: {e.disabled_reason}" if e.disabled_at else "enabled"
        table.add_row(
            e.id, e.url, ",".join(e.events), status, e.created_at.strftime("%Y-%m-%d %H:%M")
        )
    _print_table(table)


@hooks_app.command("delete")
def delete(endpoint_id: str, data_dir: DataDir = None) -> None:
    """Delete an endpoint and its deliveries."""
    _run(data_dir, None, lambda svc, who: svc.delete(who, endpoint_id, remote_addr=None))
    out.print(f"deleted {endpoint_id}")


@hooks_app.command("rotate-secret")
def rotate_secret(endpoint_id: str, data_dir: DataDir = None) -> None:
    """A new signing secret (last line; shown once); the old one signs too for 24 h."""
    made = _run(
        data_dir, None, lambda svc, who: svc.rotate_secret(who, endpoint_id, remote_addr=None)
    )
    _print_secret(made, "Rotated the secret of")


@hooks_app.command("enable")
def enable(endpoint_id: str, data_dir: DataDir = None) -> None:
    """Enable an endpoint that was disabled after failing for 3 days."""
    _run(data_dir, None, lambda svc, who: svc.enable(who, endpoint_id, remote_addr=None))
    out.print(f"enabled {endpoint_id}")


@hooks_app.command("deliveries")
def deliveries(
    endpoint_id: str,
    limit: Annotated[int, typer.Option(min=1, max=100, help="How many, newest first.")] = 20,
    data_dir: DataDir = None,
) -> None:
    """An endpoint's latest deliveries and their last attempt."""
    rows, _ = _run(
        data_dir,
        None,
        lambda svc, who: svc.deliveries(who, endpoint_id, after=None, limit=limit),
    )
    table = Table(
        Column("id", no_wrap=True), "event", "video", "status", "attempts", "last attempt"
    )
    for d in rows:
        last = d.attempt_log[-1] if d.attempt_log else None
        said = "" if last is None else (last.error or f"HTTP {last.status_code}")
        when = "" if last is None else last.attempted_at.strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(
            d.id,
            d.event_type,
            d.job_id,
            d.status,
            str(d.attempts),
            f"{when} {said} {last.latency_ms} ms" if last else "",
        )
    _print_table(table)
