"""``vidgate projects retention NAME [--days N|off]``: how long a project keeps its
videos' media after they complete, through the database as the admin API sets it
(services/retention.py), each change audited with the actor ``cli``.

``cli.py`` imports this module at its end and it registers itself on ``projects``."""

from __future__ import annotations

from typing import Annotated

import typer
from sqlalchemy.ext.asyncio import AsyncEngine

from vidgate.cli_common import DataDir, _settings, _with_database, err, out
from vidgate.cli_projects import projects_app
from vidgate.core.errors import NotFound
from vidgate.db.audit import CLI_ACTOR
from vidgate.db.project_names import find_project
from vidgate.db.retention import read_retention
from vidgate.logging import configure_logging
from vidgate.services.retention import MAX_RETENTION_DAYS, Retention, set_retention

_DAYS_HELP = (
    f"Days (1-{MAX_RETENTION_DAYS}) a completed video's media is kept, or 'off' to keep"
    " it forever. Left out: show the setting."
)


def parse_days(text: str) -> int | None:
    """``off`` -> None; else days within the bounds; ``ValueError`` otherwise."""
    if text.strip().lower() == "off":
        return None
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_RETENTION_DAYS:
        raise ValueError(f"--days must be 1-{MAX_RETENTION_DAYS} or off, not {text!r:.40}")
    return int(text)


def describe(days: int | None) -> str:
    return "media kept forever" if days is None else f"media kept {days} days after completion"


@projects_app.command("retention")
def projects_retention(
    name: Annotated[str, typer.Argument(help="The project's name or id.")],
    days: Annotated[str | None, typer.Option("--days", help=_DAYS_HELP)] = None,
    data_dir: DataDir = None,
) -> None:
    """Show or set how long a project keeps its videos' media (expired media is
    deleted by the worker; the videos' content then answers 404 video_expired)."""
    try:
        wanted = parse_days(days) if days is not None else None
    except ValueError as exc:
        err.print(str(exc), highlight=False)
        raise typer.Exit(2) from None
    configure_logging("WARNING")

    async def work(db: AsyncEngine) -> Retention | None:
        async with db.connect() as conn:
            found = await find_project(conn, name)
            if found is None:
                return None
            current = await read_retention(conn, found[0])
        if days is None:
            return Retention(found[0], current if isinstance(current, int) else None)
        try:
            return await set_retention(db, found[0], wanted, actor=CLI_ACTOR, remote_addr=None)
        except NotFound:  # deleted meanwhile
            return None

    result = _with_database(_settings(data_dir), work)
    if result is None:
        err.print(f"no project {name!r}", highlight=False)
        raise typer.Exit(1)
    out.print(f"project {name}: {describe(result.days)}", highlight=False)
