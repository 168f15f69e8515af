"""Rate limits' SQL: the limits of a key and its project, taken with their advisory
locks; what counts against them; the record of an accepted create; setting limits.

Exact across processes because every create under a limit runs, in its own
transaction, ``lock_limits`` (the scopes' transaction-scoped advisory locks), then
``count_usage`` in a LATER statement (under READ COMMITTED each statement sees what
committed before it began, so it sees every create that held the lock before), then
``record_admission`` and the job's INSERT; the locks are released at commit, after the
rows are visible. Locks are taken project first, then key, in one statement; the two
kinds live in different advisory key spaces, so no two creates wait on each other in a
cycle.

Times are the database clock's ``clock_timestamp()`` taken under the lock, so they
grow in lock order: a create counts every accepted create after ``its time - window``,
and pruning (of rows older than the pruner's own window, which began no later) never
removes one a later create would count. Hence at most ``rpm`` creates in any window.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from vidgate.core.ids import id_floor
from vidgate.core.limits import Limits, ScopeKind, ScopeUsage
from vidgate.db.database import raw_connection
from vidgate.db.schema import api_keys, jobs, limit_admissions, tenants

# Advisory lock key spaces (the two-int form, apart from every one-bigint lock):
# "vglp" and "vglk".
_PROJECT_LOCKS = 0x76676C70
_KEY_LOCKS = 0x76676C6B
_ACTIVE = ("queued", "submitting", "waiting", "finalizing")


def project_scope(tenant_id: str) -> str:
    return f"project:{tenant_id}"


def key_scope(key_id: str) -> str:
    return f"key:{key_id}"


@dataclass(frozen=True, slots=True)
class OwnerLimits:
    """A key's limits and its project's, as read (and locked) at a create."""

    tenant_id: str
    tenant_name: str
    key: Limits
    project: Limits


# Every create runs it: a constant statement on the raw connection, which psycopg
# prepares once per connection (db/writes.py says why).
_LOCK_LIMITS = f"""
    SELECT t.id, t.name, k.rpm, k.max_concurrent, t.rpm, t.max_concurrent,
           CASE WHEN t.rpm IS NOT NULL OR t.max_concurrent IS NOT NULL
                THEN pg_advisory_xact_lock({_PROJECT_LOCKS}, hashtext(t.id)) END,
           CASE WHEN k.rpm IS NOT NULL OR k.max_concurrent IS NOT NULL
                THEN pg_advisory_xact_lock({_KEY_LOCKS}, hashtext(k.id)) END
    FROM api_keys k JOIN tenants t ON t.id = k.tenant_id
    WHERE k.id = %s
    """


async def lock_limits(conn: AsyncConnection, key_id: str) -> OwnerLimits | None:
    """The key's and its project's limits; the advisory lock of each scope that has a
    limit is held until ``conn``'s transaction ends (project's first, then key's: the
    select list is evaluated in order)."""
    raw: psycopg.AsyncConnection[Any] = await raw_connection(conn)
    async with raw.cursor() as cur:
        await cur.execute(_LOCK_LIMITS, (key_id,))
        row = await cur.fetchone()
    if row is None:
        return None
    tenant_id, name, key_rpm, key_conc, project_rpm, project_conc = row[:6]
    return OwnerLimits(
        tenant_id, name, Limits(key_rpm, key_conc), Limits(project_rpm, project_conc)
    )


_COUNT_USAGE = sa.text(
    """
    WITH clock AS MATERIALIZED (SELECT clock_timestamp() AS t),
    pruned AS (
        DELETE FROM limit_admissions a USING clock
        WHERE a.scope = ANY(:scopes) AND a.at <= clock.t - make_interval(secs => :window_s)
    ),
    recent AS (
        SELECT a.scope, count(*) AS n,
               extract(epoch FROM clock.t - min(a.at)) AS oldest,
               extract(epoch FROM clock.t - max(a.at)) AS newest
        FROM limit_admissions a, clock
        WHERE a.scope = ANY(:scopes) AND a.at > clock.t - make_interval(secs => :window_s)
        GROUP BY a.scope, clock.t
    )
    SELECT clock.t,
           (SELECT json_agg(json_build_array(scope, n, oldest, newest)) FROM recent),
           CASE WHEN :count_key THEN (
               SELECT count(*) FROM jobs
               WHERE tenant_id = :tenant_id AND api_key_id = :key_id
                 AND state IN ('queued', 'submitting', 'waiting', 'finalizing')) END,
           CASE WHEN :count_project THEN (
               SELECT count(*) FROM jobs
               WHERE tenant_id = :tenant_id
                 AND state IN ('queued', 'submitting', 'waiting', 'finalizing')) END
    FROM clock
    """
)


async def count_usage(
    conn: AsyncConnection, key_id: str, owner: OwnerLimits, *, window_s: float
) -> tuple[dt.datetime, list[ScopeUsage]]:
    """The database clock now, and each limited scope's usage, after ``lock_limits`` on
    the same transaction (a statement of its own: see the module's docstring). Rows of
    the scopes that have left the window are pruned on the way."""
    scopes = [key_scope(key_id), project_scope(owner.tenant_id)]
    row = (
        await conn.execute(
            _COUNT_USAGE,
            {
                "scopes": scopes,
                "window_s": window_s,
                "tenant_id": owner.tenant_id,
                "key_id": key_id,
                "count_key": owner.key.max_concurrent is not None,
                "count_project": owner.project.max_concurrent is not None,
            },
        )
    ).one()
    now, recent_rows, key_flight, project_flight = row
    recent = {scope: (n, oldest, newest) for scope, n, oldest, newest in recent_rows or []}
    owners: tuple[tuple[ScopeKind, str, str, Limits, int | None], ...] = (
        ("key", key_id, scopes[0], owner.key, key_flight),
        ("project", owner.tenant_name, scopes[1], owner.project, project_flight),
    )
    usages = []
    for kind, name, scope, limits, in_flight in owners:
        if not limits.any:
            continue
        n, oldest, newest = recent.get(scope, (0, None, None))
        usages.append(
            ScopeUsage(
                kind,
                name,
                limits,
                recent=int(n),
                oldest_age_s=None if oldest is None else float(oldest),
                newest_age_s=None if newest is None else float(newest),
                in_flight=int(in_flight or 0),
            )
        )
    return now, usages


async def record_admission(conn: AsyncConnection, scopes: Sequence[str], at: dt.datetime) -> None:
    """An accepted create, counted from ``at`` (``count_usage``'s clock) in ``scopes``."""
    if scopes:
        await conn.execute(limit_admissions.insert(), [{"scope": s, "at": at} for s in scopes])


async def read_key_limits(conn: AsyncConnection, key_id: str) -> tuple[str, Limits] | None:
    """A key's project id and limits; None when there is no such key."""
    row = (
        await conn.execute(
            sa.select(api_keys.c.tenant_id, api_keys.c.rpm, api_keys.c.max_concurrent).where(
                api_keys.c.id == key_id
            )
        )
    ).first()
    return None if row is None else (row[0], Limits(row[1], row[2]))


async def read_project_limits(conn: AsyncConnection, tenant_id: str) -> Limits | None:
    row = (
        await conn.execute(
            sa.select(tenants.c.rpm, tenants.c.max_concurrent).where(tenants.c.id == tenant_id)
        )
    ).first()
    return None if row is None else Limits(row[0], row[1])


async def write_key_limits(
    conn: AsyncConnection, key_id: str, values: dict[str, int | None]
) -> Limits | None:
    """Set some of a key's limits (``values``: ``rpm``, ``max_concurrent``); the key's
    limits as they now are, or None when there is no such key. A new ``rpm`` counts
    the key's creates of the last minute at once (``_seed``)."""
    row = (
        await conn.execute(
            api_keys.update()
            .where(api_keys.c.id == key_id)
            .values(**values)
            .returning(api_keys.c.tenant_id, api_keys.c.rpm, api_keys.c.max_concurrent)
        )
    ).first()
    if row is None:
        return None
    if "rpm" in values:
        await _seed(conn, key_scope(key_id), jobs.c.api_key_id == key_id, values["rpm"])
    return Limits(row[1], row[2])


async def write_project_limits(
    conn: AsyncConnection, tenant_id: str, values: dict[str, int | None]
) -> Limits | None:
    row = (
        await conn.execute(
            tenants.update()
            .where(tenants.c.id == tenant_id)
            .values(**values)
            .returning(tenants.c.rpm, tenants.c.max_concurrent)
        )
    ).first()
    if row is None:
        return None
    if "rpm" in values:
        await _seed(conn, project_scope(tenant_id), jobs.c.tenant_id == tenant_id, values["rpm"])
    return Limits(row[0], row[1])


# Jobs made in the last minute, found by id: ids begin with their creation time (the
# creating process's clock), so a range of the primary key holds them; the margin
# covers clocks that disagree.
_SEED_MARGIN_S = 300


async def _seed(conn: AsyncConnection, scope: str, owned: Any, rpm: int | None) -> None:
    """Start ``scope``'s window afresh: its rows are dropped and, when it has an
    ``rpm``, its jobs of the last minute are written in, so a limit set now already
    counts them. Runs under the scope's lock, as creates do."""
    kind, owner_id = scope.split(":", 1)
    lock_space = _KEY_LOCKS if kind == "key" else _PROJECT_LOCKS
    lock = sa.func.pg_advisory_xact_lock(lock_space, sa.func.hashtext(owner_id))
    await conn.execute(sa.select(lock))
    await conn.execute(limit_admissions.delete().where(limit_admissions.c.scope == scope))
    if rpm is None:
        return
    floor = id_floor("video", dt.datetime.now(dt.UTC).timestamp() - 60 - _SEED_MARGIN_S)
    recent = sa.select(sa.literal(scope), jobs.c.created_at).where(
        jobs.c.id >= floor,
        owned,
        jobs.c.created_at > sa.func.clock_timestamp() - sa.text("interval '60 seconds'"),
    )
    await conn.execute(limit_admissions.insert().from_select(["scope", "at"], recent))
