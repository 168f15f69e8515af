"""The CLI's rate limit work (``vidgate projects limits``, ``vidgate keys limits``,
``keys create --rpm/--max-concurrent``): the database writes, with their audit entries,
and the line that shows the result. cli.py declares the commands."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from vidgate.core.limits import MAX_LIMIT, Limits
from vidgate.db import audit
from vidgate.db import limits as db_limits
from vidgate.db.project_names import find_project

OFF = "off"
LIMIT_HELP = f"1..{MAX_LIMIT}, or {OFF!r} for no limit."


class LimitArgumentError(ValueError):
    pass


def parse_limit(flag: str, value: str | None) -> dict[str, int | None]:
    """``--rpm 60`` -> {"rpm": 60}; ``--rpm off`` -> {"rpm": None}; not given -> {}."""
    if value is None:
        return {}
    name = flag.removeprefix("--").replace("-", "_")
    if value.strip().lower() == OFF:
        return {name: None}
    try:
        number = int(value)
    except ValueError:
        number = 0
    if not 1 <= number <= MAX_LIMIT:
        raise LimitArgumentError(f"{flag} must be {LIMIT_HELP.rstrip('.')}; got {value!r}")
    return {name: number}


def limit_values(rpm: int | None, max_concurrent: int | None) -> dict[str, int | None]:
    """The limits given to ``keys create`` (both optional)."""
    values: dict[str, int | None] = {}
    if rpm is not None:
        values["rpm"] = rpm
    if max_concurrent is not None:
        values["max_concurrent"] = max_concurrent
    return values


def describe(limits: Limits) -> str:
    rpm = f"{limits.rpm} creates per minute" if limits.rpm else "no creates-per-minute limit"
    conc = (
        f"{limits.max_concurrent} jobs in flight"
        if limits.max_concurrent
        else "no jobs-in-flight limit"
    )
    return f"{rpm}, {conc}"


async def set_key_limits(
    conn: AsyncConnection, key_id: str, values: dict[str, int | None]
) -> Limits | None:
    """Set a key's limits from the CLI, on ``conn``'s transaction (a ``keys create``'s
    too); None when there is no such key."""
    found = await db_limits.read_key_limits(conn, key_id)
    if found is None:
        return None
    if not values:
        return found[1]
    limits = await db_limits.write_key_limits(conn, key_id, values)
    await audit.record(
        conn,
        actor=audit.CLI_ACTOR,
        action="keys.limits",
        tenant_id=found[0],
        target=key_id,
        detail=dict(values),
    )
    return limits


async def key_limits(db: AsyncEngine, key_id: str, values: dict[str, int | None]) -> Limits | None:
    async with db.begin() as conn:
        return await set_key_limits(conn, key_id, values)


async def project_limits(
    db: AsyncEngine, name: str, values: dict[str, int | None]
) -> Limits | None:
    """Show, or set, the limits of the project ``name`` (or id); None when there is none."""
    async with db.begin() as conn:
        found = await find_project(conn, name)
        if found is None:
            return None
        project_id = found[0]
        if not values:
            return await db_limits.read_project_limits(conn, project_id)
        limits = await db_limits.write_project_limits(conn, project_id, values)
        await audit.record(
            conn,
            actor=audit.CLI_ACTOR,
            action="projects.limits",
            tenant_id=project_id,
            target=project_id,
            detail=dict(values),
        )
        return limits
