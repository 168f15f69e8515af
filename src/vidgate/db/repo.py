"""Every query vidgate runs against its own tables, in one place.

Callers pass an open ``AsyncConnection`` (and so decide the transaction); functions
return small frozen records, never SQLAlchemy rows.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB as JSONB_TYPE
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from vidgate.db.schema import (
    api_keys,
    blobs,
    deployment_health,
    idempotency_keys,
    instance_secrets,
    job_outputs,
    jobs,
    sandbox_tasks,
    tenants,
)

ACTIVE_STATES = ("queued", "submitting", "waiting", "finalizing")
TERMINAL_STATES = ("completed", "failed", "cancelled")


# --- tenants and keys -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeyRecord:
    id: str
    tenant_id: str
    tenant_name: str
    name: str
    prefix: str
    mode: Literal["test", "live"]
    is_admin: bool
    created_at: dt.datetime
    revoked_at: dt.datetime | None


async def ensure_tenant(conn: AsyncConnection, tenant_id: str, name: str) -> str:
    stmt = pg_insert(tenants).values(id=tenant_id, name=name).on_conflict_do_nothing()
    await conn.execute(stmt)
    found = await conn.scalar(sa.select(tenants.c.id).where(tenants.c.name == name))
    assert found is not None
    return str(found)


async def webhook_secret(conn: AsyncConnection, tenant_id: str, candidate: str) -> str:
    """The tenant's webhook signing secret, set to ``candidate`` if it has none yet."""
    value = await conn.scalar(
        tenants.update()
        .where(tenants.c.id == tenant_id)
        .values(webhook_secret=sa.func.coalesce(tenants.c.webhook_secret, candidate))
        .returning(tenants.c.webhook_secret)
    )
    assert value is not None
    return str(value)


async def insert_api_key(
    conn: AsyncConnection,
    *,
    key_id: str,
    tenant_id: str,
    name: str,
    prefix: str,
    secret_hash: bytes,
    mode: str,
    is_admin: bool,
) -> None:
    await conn.execute(
        api_keys.insert().values(
            id=key_id,
            tenant_id=tenant_id,
            name=name,
            prefix=prefix,
            secret_hash=secret_hash,
            mode=mode,
            is_admin=is_admin,
        )
    )


_KEY_COLUMNS = (
    api_keys.c.id,
    api_keys.c.tenant_id,
    tenants.c.name.label("tenant_name"),
    api_keys.c.name,
    api_keys.c.prefix,
    api_keys.c.mode,
    api_keys.c.is_admin,
    api_keys.c.created_at,
    api_keys.c.revoked_at,
)


def _key(row: sa.Row[*tuple[Any, ...]]) -> KeyRecord:
    return KeyRecord(**row._mapping)


async def find_active_key(conn: AsyncConnection, secret_hash: bytes) -> KeyRecord | None:
    row = (
        await conn.execute(
            sa.select(*_KEY_COLUMNS)
            .join(tenants, tenants.c.id == api_keys.c.tenant_id)
            .where(api_keys.c.secret_hash == secret_hash, api_keys.c.revoked_at.is_(None))
        )
    ).first()
    return _key(row) if row else None


async def list_keys(conn: AsyncConnection) -> list[KeyRecord]:
    rows = await conn.execute(
        sa.select(*_KEY_COLUMNS)
        .join(tenants, tenants.c.id == api_keys.c.tenant_id)
        .order_by(api_keys.c.created_at)
    )
    return [_key(r) for r in rows]


async def revoke_key(conn: AsyncConnection, key_id: str) -> bool:
    revoked = await conn.execute(
        api_keys.update()
        .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=sa.func.now())
        .returning(api_keys.c.id)
    )
    return revoked.first() is not None


async def count_keys(conn: AsyncConnection) -> int:
    return int(await conn.scalar(sa.select(sa.func.count()).select_from(api_keys)) or 0)


# --- jobs -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JobRecord:
    id: str
    tenant_id: str
    api_key_id: str
    mode: str
    model: str
    kind: str
    spec: dict[str, Any]
    state: str
    progress: int
    error_code: str | None
    error_message: str | None
    provider: str
    upstream_model: str | None
    upstream_id: str | None
    estimated_cost: Decimal
    cost: Decimal | None
    step_attempts: int
    poll_count: int
    source_video_id: str | None
    webhook_url: str | None
    tried_providers: list[str]
    created_at: dt.datetime
    updated_at: dt.datetime
    submitted_at: dt.datetime | None
    completed_at: dt.datetime | None
    deleted_at: dt.datetime | None
    next_poll_at: dt.datetime | None = None
    submit_at: dt.datetime | None = None
    # What the adapter keeps about its upstream task (providers/base.py TaskState).
    upstream_state: dict[str, Any] | None = None

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL_STATES


def _job(row: sa.Row[*tuple[Any, ...]]) -> JobRecord:
    return JobRecord(**row._mapping)


async def get_job(
    conn: AsyncConnection,
    job_id: str,
    *,
    tenant_id: str | None = None,
    for_update: bool = False,
    include_deleted: bool = False,
) -> JobRecord | None:
    stmt = sa.select(jobs).where(jobs.c.id == job_id)
    if tenant_id is not None:
        stmt = stmt.where(jobs.c.tenant_id == tenant_id)
    if not include_deleted:
        stmt = stmt.where(jobs.c.deleted_at.is_(None))
    if for_update:
        stmt = stmt.with_for_update()
    row = (await conn.execute(stmt)).first()
    return _job(row) if row else None


async def list_jobs(
    conn: AsyncConnection,
    tenant_id: str,
    *,
    after: str | None,
    limit: int,
    order: Literal["asc", "desc"],
) -> list[JobRecord]:
    """A page of the tenant's jobs; ids are time-ordered, so the id is the cursor."""
    stmt = sa.select(jobs).where(jobs.c.tenant_id == tenant_id, jobs.c.deleted_at.is_(None))
    if after is not None:
        stmt = stmt.where(jobs.c.id > after if order == "asc" else jobs.c.id < after)
    stmt = stmt.order_by(jobs.c.id.asc() if order == "asc" else jobs.c.id.desc()).limit(limit)
    return [_job(r) for r in await conn.execute(stmt)]


async def update_job(conn: AsyncConnection, job_id: str, **values: Any) -> None:
    await conn.execute(
        jobs.update().where(jobs.c.id == job_id).values(updated_at=sa.func.now(), **values)
    )


_procrastinate_jobs = sa.table(
    "procrastinate_jobs",
    sa.column("args", JSONB_TYPE),
    sa.column("status", sa.Text),
    sa.column("task_name", sa.Text),
    sa.column("lock", sa.Text),
    sa.column("scheduled_at", sa.DateTime(timezone=True)),
)


def _pending_step(job_id: sa.ColumnElement[str]) -> sa.Exists:
    """A queued or running finalize step (engine/steps.py) for the job."""
    pj = _procrastinate_jobs
    return (
        sa.select(sa.literal(1))
        .select_from(pj)
        .where(
            pj.c.args["job_id"].astext == job_id,
            sa.cast(pj.c.status, sa.Text).in_(["todo", "doing"]),
            pj.c.task_name == "vidgate:finalize",
        )
        .exists()
    )


async def has_pending_step(conn: AsyncConnection, job_id: str) -> bool:
    return bool(await conn.scalar(sa.select(_pending_step(sa.literal(job_id)))))


async def active_jobs_without_task(conn: AsyncConnection, limit: int = 500) -> list[str]:
    """Finalizing jobs that no procrastinate task will advance: lost work for the
    sweeper. (Jobs to submit and waiting jobs are the submitter's and the poller's:
    their row says when.)"""
    rows = await conn.execute(
        sa.select(jobs.c.id)
        .where(jobs.c.state == "finalizing", ~_pending_step(jobs.c.id))
        .order_by(jobs.c.id)
        .limit(limit)
    )
    return [r[0] for r in rows]


async def schedule_unscheduled(conn: AsyncConnection) -> int:
    """Jobs to submit with no submit time, and waiting jobs with no next poll (none is
    written without one; a hand-edited row, say): take them up now."""
    submits = await conn.execute(
        jobs.update()
        .where(jobs.c.state.in_(["queued", "submitting"]), jobs.c.submit_at.is_(None))
        .values(submit_at=sa.func.now())
    )
    polls = await conn.execute(
        jobs.update()
        .where(jobs.c.state == "waiting", jobs.c.next_poll_at.is_(None))
        .values(next_poll_at=sa.func.now())
    )
    return int(submits.rowcount) + int(polls.rowcount)


# --- outputs and blobs ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OutputRecord:
    job_id: str
    index: int
    video_sha256: str
    thumbnail_sha256: str
    spritesheet_sha256: str
    width: int
    height: int
    fps: float
    duration: float
    size_bytes: int


async def record_blob(conn: AsyncConnection, sha256: str, size: int, content_type: str) -> None:
    await conn.execute(
        pg_insert(blobs)
        .values(sha256=sha256, size=size, content_type=content_type)
        .on_conflict_do_nothing()
    )


async def get_blob_content_type(conn: AsyncConnection, sha256: str) -> str | None:
    value = await conn.scalar(sa.select(blobs.c.content_type).where(blobs.c.sha256 == sha256))
    return str(value) if value is not None else None


async def insert_output(conn: AsyncConnection, output: OutputRecord) -> bool:
    """Record an output once; a repeated finalize step finds it there and keeps the first."""
    inserted = await conn.execute(
        pg_insert(job_outputs)
        .values(
            job_id=output.job_id,
            index=output.index,
            video_sha256=output.video_sha256,
            thumbnail_sha256=output.thumbnail_sha256,
            spritesheet_sha256=output.spritesheet_sha256,
            width=output.width,
            height=output.height,
            fps=output.fps,
            duration=output.duration,
            size_bytes=output.size_bytes,
        )
        .on_conflict_do_nothing()
        .returning(job_outputs.c.index)
    )
    return inserted.first() is not None


async def get_outputs(conn: AsyncConnection, job_id: str) -> list[OutputRecord]:
    rows = await conn.execute(
        sa.select(
            job_outputs.c.job_id,
            job_outputs.c.index,
            job_outputs.c.video_sha256,
            job_outputs.c.thumbnail_sha256,
            job_outputs.c.spritesheet_sha256,
            job_outputs.c.width,
            job_outputs.c.height,
            job_outputs.c.fps,
            job_outputs.c.duration,
            job_outputs.c.size_bytes,
        )
        .where(job_outputs.c.job_id == job_id)
        .order_by(job_outputs.c.index)
    )
    return [OutputRecord(**r._mapping) for r in rows]


# --- idempotency ------------------------------------------------------------------


async def claim_idempotency_key(
    conn: AsyncConnection, tenant_id: str, key: str, request_hash: str, job_id: str
) -> tuple[str, str] | None:
    """Insert the key, or return ``(request_hash, job_id)`` of the request that holds it."""
    inserted = (
        await conn.execute(
            pg_insert(idempotency_keys)
            .values(tenant_id=tenant_id, key=key, request_hash=request_hash, job_id=job_id)
            .on_conflict_do_nothing()
            .returning(idempotency_keys.c.job_id)
        )
    ).first()
    if inserted is not None:
        return None
    row = (
        await conn.execute(
            sa.select(idempotency_keys.c.request_hash, idempotency_keys.c.job_id).where(
                idempotency_keys.c.tenant_id == tenant_id, idempotency_keys.c.key == key
            )
        )
    ).one()
    return str(row.request_hash), str(row.job_id)


async def find_idempotency_key(
    conn: AsyncConnection, tenant_id: str, key: str
) -> tuple[str, str] | None:
    row = (
        await conn.execute(
            sa.select(idempotency_keys.c.request_hash, idempotency_keys.c.job_id).where(
                idempotency_keys.c.tenant_id == tenant_id, idempotency_keys.c.key == key
            )
        )
    ).first()
    return (str(row.request_hash), str(row.job_id)) if row else None


# --- instance secrets -------------------------------------------------------------


async def get_or_create_secret(conn: AsyncConnection, name: str, candidate: bytes) -> bytes:
    await conn.execute(
        pg_insert(instance_secrets).values(name=name, value=candidate).on_conflict_do_nothing()
    )
    value = await conn.scalar(
        sa.select(instance_secrets.c.value).where(instance_secrets.c.name == name)
    )
    assert value is not None
    return bytes(value)


# --- the sandbox provider's upstream store ----------------------------------------


@dataclass(frozen=True, slots=True)
class SandboxTaskRecord:
    id: str
    idempotency_key: str
    request: dict[str, Any]
    latency_s: float
    fail_code: str | None
    submit_calls: int
    created_at: dt.datetime
    cancelled_at: dt.datetime | None


async def sandbox_submit(
    conn: AsyncConnection,
    *,
    task_id: str,
    idempotency_key: str,
    request: dict[str, Any],
    latency_s: float,
    fail_code: str | None,
) -> SandboxTaskRecord:
    """Create the task, or count another call for the same idempotency key and return it."""
    stmt = pg_insert(sandbox_tasks).values(
        id=task_id,
        idempotency_key=idempotency_key,
        request=request,
        latency_s=latency_s,
        fail_code=fail_code,
    )
    upsert = stmt.on_conflict_do_update(
        index_elements=[sandbox_tasks.c.idempotency_key],
        set_={"submit_calls": sandbox_tasks.c.submit_calls + 1},
    ).returning(*sandbox_tasks.c)
    row = (await conn.execute(upsert)).one()
    return SandboxTaskRecord(**row._mapping)


async def sandbox_get(conn: AsyncConnection, task_id: str) -> SandboxTaskRecord | None:
    row = (
        await conn.execute(sa.select(sandbox_tasks).where(sandbox_tasks.c.id == task_id))
    ).first()
    return SandboxTaskRecord(**row._mapping) if row else None


async def sandbox_cancel(conn: AsyncConnection, task_id: str) -> None:
    await conn.execute(
        sandbox_tasks.update()
        .where(sandbox_tasks.c.id == task_id, sandbox_tasks.c.cancelled_at.is_(None))
        .values(cancelled_at=sa.func.now())
    )


async def now(conn: AsyncConnection) -> dt.datetime:
    value = await conn.scalar(sa.select(sa.func.now()))
    assert isinstance(value, dt.datetime)
    return value


# --- deployment health and capacity -----------------------------------------------


@dataclass(frozen=True, slots=True)
class HealthRecord:
    name: str
    consecutive_failures: int
    open_until: dt.datetime | None
    last_error: str | None
    unhealthy: bool


async def deployment_health_all(conn: AsyncConnection) -> dict[str, HealthRecord]:
    rows = await conn.execute(
        sa.select(
            deployment_health.c.name,
            deployment_health.c.consecutive_failures,
            deployment_health.c.open_until,
            deployment_health.c.last_error,
            deployment_health.c.unhealthy,
        )
    )
    return {r.name: HealthRecord(**r._mapping) for r in rows}


async def open_breakers(conn: AsyncConnection, names: list[str]) -> set[str]:
    rows = await conn.execute(
        sa.select(deployment_health.c.name).where(
            deployment_health.c.name.in_(names), deployment_health.c.open_until > sa.func.now()
        )
    )
    return {r[0] for r in rows}


async def record_deployment_failure(
    conn: AsyncConnection,
    name: str,
    error: str,
    *,
    threshold: int,
    cooldown_s: float,
    unhealthy: bool,
) -> None:
    """Count a failure; at ``threshold`` in a row (or at once when ``unhealthy``), open
    the breaker for ``cooldown_s``."""
    failures = deployment_health.c.consecutive_failures + 1
    stmt = pg_insert(deployment_health).values(
        name=name,
        consecutive_failures=1,
        last_error=error,
        unhealthy=unhealthy,
        open_until=(
            sa.func.now() + sa.func.make_interval(0, 0, 0, 0, 0, 0, cooldown_s)
            if unhealthy or threshold <= 1
            else None
        ),
    )
    opens = sa.or_(sa.literal(unhealthy), failures >= threshold)
    stmt = stmt.on_conflict_do_update(
        index_elements=[deployment_health.c.name],
        set_={
            "consecutive_failures": failures,
            "last_error": error,
            "unhealthy": sa.literal(unhealthy),
            "open_until": sa.case(
                (opens, sa.func.now() + sa.func.make_interval(0, 0, 0, 0, 0, 0, cooldown_s)),
                else_=deployment_health.c.open_until,
            ),
            "updated_at": sa.func.now(),
        },
    )
    await conn.execute(stmt)


async def record_deployment_success(conn: AsyncConnection, name: str) -> None:
    await conn.execute(
        deployment_health.update()
        .where(deployment_health.c.name == name, deployment_health.c.consecutive_failures > 0)
        .values(
            consecutive_failures=0,
            open_until=None,
            unhealthy=False,
            updated_at=sa.func.now(),
        )
    )


async def lock_deployment(conn: AsyncConnection, name: str) -> None:
    """Serialize capacity checks for one deployment until the transaction ends."""
    await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtext("deploy:" + name))))


async def count_inflight(conn: AsyncConnection, provider: str) -> int:
    value = await conn.scalar(
        sa.select(sa.func.count())
        .select_from(jobs)
        .where(jobs.c.provider == provider, jobs.c.state.in_(["submitting", "waiting"]))
    )
    return int(value or 0)


# --- submissions (engine/submitter.py) --------------------------------------------

# Notified when a job is queued for submission (or falls back to another deployment).
SUBMIT_CHANNEL = "vidgate_submit"

# A claimed submission's ``submit_at`` is when its lease runs out; its submitter renews
# it while the provider answers, so only a dead submitter's claims become due again.
_SUBMIT_LEASE = (
    "submit_at = now() + make_interval(secs => :lease), state = 'submitting', updated_at = now()"
)
# What a claim of due submissions may take, and so what the submitter waits for: queued
# jobs of deployments without a cap (``:capped``), and any job left ``submitting``.
_SUBMITTABLE = (
    "state IN ('queued', 'submitting')"
    " AND NOT (state = 'queued' AND provider = ANY(CAST(:capped AS text[])))"
)
_JOB_COLUMNS = ", ".join(f"jobs.{f.name}" for f in dataclasses.fields(JobRecord))


async def _claim_due(conn: AsyncConnection, where: str, params: dict[str, Any]) -> list[JobRecord]:
    """Claim due jobs matching ``where`` (``:limit`` of them, oldest due first), rows
    other submitters hold skipped."""
    result = await conn.execute(
        sa.text(
            f"UPDATE jobs SET {_SUBMIT_LEASE} WHERE id IN (SELECT id FROM jobs"
            f" WHERE {where} AND submit_at <= now()"
            " ORDER BY submit_at LIMIT :limit FOR UPDATE SKIP LOCKED)"
            f" RETURNING {_JOB_COLUMNS}"
        ),
        params,
    )
    return [_job(row) for row in result]


async def _free_capacity(conn: AsyncConnection, provider: str, cap: int) -> int:
    """How many more jobs a capped deployment may have submitting or waiting. The
    deployment's lock, held to the transaction's end, keeps two submitters from both
    counting the same free slot."""
    await lock_deployment(conn, provider)
    return cap - await count_inflight(conn, provider)


async def claim_due_submissions(
    conn: AsyncConnection, *, limit: int, lease_s: float, capped: list[str]
) -> list[JobRecord]:
    """Claim up to ``limit`` jobs whose submission is due, oldest due first, moving
    them to ``submitting``: queued jobs of deployments without a concurrency cap, and
    jobs a submission left ``submitting`` (its retry is due, or its submitter died and
    the lease ran out). Rows other submitters hold are skipped."""
    return await _claim_due(
        conn, _SUBMITTABLE, {"lease": lease_s, "limit": limit, "capped": capped}
    )


async def claim_capped_submissions(
    conn: AsyncConnection, provider: str, *, cap: int, limit: int, lease_s: float
) -> list[JobRecord]:
    """Claim queued jobs of a capped deployment, as many as its free capacity allows
    (``cap`` jobs submitting or waiting at once). Call in a transaction (the
    capacity count holds the deployment's lock)."""
    free = min(limit, await _free_capacity(conn, provider, cap))
    if free <= 0:
        return []
    return await _claim_due(
        conn,
        "state = 'queued' AND provider = :provider",
        {"lease": lease_s, "limit": free, "provider": provider},
    )


async def claim_submission(
    conn: AsyncConnection, job_id: str, *, lease_s: float, capped: dict[str, int]
) -> JobRecord | None:
    """Claim one job to submit whether or not it is due: None when it is in another
    state, or queued for a capped deployment with no free capacity. Call in a
    transaction (the capacity check holds the deployment's lock)."""
    job = await get_job(conn, job_id, for_update=True, include_deleted=True)
    if job is None or job.state not in ("queued", "submitting"):
        return None
    cap = capped.get(job.provider)
    if (
        job.state == "queued"
        and cap is not None
        and await _free_capacity(conn, job.provider, cap) <= 0
    ):
        return None
    result = await conn.execute(
        sa.text(f"UPDATE jobs SET {_SUBMIT_LEASE} WHERE id = :id RETURNING {_JOB_COLUMNS}"),
        {"lease": lease_s, "id": job_id},
    )
    row = result.first()
    return _job(row) if row else None


@dataclass(frozen=True, slots=True)
class Submitted:
    """A claimed job its provider accepted: written back with others in one statement."""

    job_id: str
    provider: str
    upstream_id: str
    first_poll_s: float
    upstream_state: Mapping[str, Any] = field(default_factory=dict)


async def record_submissions(conn: AsyncConnection, items: list[Submitted]) -> set[str]:
    """``submitting`` -> ``waiting`` with the upstream task and its first poll, for a
    batch in one statement. A job that left ``submitting`` meanwhile (cancelled, or
    written by another submission after a lease ran out) is left as it is. Returns the
    ids written."""
    if not items:
        return set()
    result = await conn.execute(
        sa.text(
            "UPDATE jobs SET state = 'waiting', upstream_id = u.upstream_id,"
            " upstream_state = u.upstream_state,"
            " submitted_at = now(), next_poll_at = now() + make_interval(secs => u.first_poll),"
            " submit_at = NULL, step_attempts = 0, updated_at = now()"
            " FROM unnest(CAST(:ids AS text[]), CAST(:upstream AS text[]),"
            " CAST(:first_poll AS float8[]), CAST(:state AS jsonb[]))"
            " AS u(id, upstream_id, first_poll, upstream_state)"
            " WHERE jobs.id = u.id AND jobs.state = 'submitting'"
            " RETURNING jobs.id"
        ),
        {
            "ids": [i.job_id for i in items],
            "upstream": [i.upstream_id for i in items],
            "first_poll": [i.first_poll_s for i in items],
            # An adapter with nothing to keep leaves the column NULL.
            "state": [json.dumps(i.upstream_state) if i.upstream_state else None for i in items],
        },
    )
    return {row[0] for row in result}


async def schedule_submission(
    conn: AsyncConnection, job_id: str, *, delay_s: float, **values: Any
) -> None:
    """Submit the job (again) after ``delay_s``: a retry keeps its state, a fallback
    passes ``state="queued"`` with its next deployment."""
    await update_job(conn, job_id, submit_at=db_now(after_s=delay_s), **values)


async def renew_submissions(conn: AsyncConnection, job_ids: list[str], *, lease_s: float) -> None:
    """Extend the leases of submissions still waiting on their providers (``lease_s=0``:
    give them up, due again at once)."""
    await conn.execute(
        sa.text(
            "UPDATE jobs SET submit_at = now() + make_interval(secs => :lease)"
            " WHERE id = ANY(CAST(:ids AS text[])) AND state = 'submitting'"
        ),
        {"ids": job_ids, "lease": lease_s},
    )


async def next_submission_due_in(conn: AsyncConnection, *, capped: list[str]) -> float | None:
    """Seconds until the earliest submission a claim would take is due (<= 0: overdue);
    None when there is none. Queued jobs of capped deployments are left out: they wait
    for capacity, not for a time."""
    value = await conn.scalar(
        sa.text(
            f"SELECT EXTRACT(EPOCH FROM (min(submit_at) - now())) FROM jobs WHERE {_SUBMITTABLE}"
        ),
        {"capped": capped},
    )
    return None if value is None else float(value)


async def notify_submitters(conn: AsyncConnection) -> None:
    """Wake sleeping submitters when the transaction commits."""
    await conn.execute(sa.text(f"NOTIFY {SUBMIT_CHANNEL}"))


# --- polling (engine/poller.py) ---------------------------------------------------

# Notified when a poll falls due sooner than a sleeping poller would look again.
POLL_CHANNEL = "vidgate_poll"


@dataclass(frozen=True, slots=True)
class PollClaim:
    """A waiting job a poller has claimed: ``lease_until`` is the job's ``next_poll_at``
    while the claim holds, and the token its result is written back against."""

    job_id: str
    provider: str
    upstream_id: str
    progress: int
    poll_count: int
    step_attempts: int
    submitted_at: dt.datetime | None
    lease_until: dt.datetime
    # What the adapter's status read needs besides the id (providers/base.py UpstreamTask).
    spec: dict[str, Any]
    upstream_model: str | None
    upstream_state: dict[str, Any] | None


_CLAIM_RETURNING = (
    "RETURNING id, provider, upstream_id, progress, poll_count, step_attempts,"
    " submitted_at, next_poll_at, spec, upstream_model, upstream_state"
)


def _claims(result: sa.CursorResult[Any]) -> list[PollClaim]:
    return [
        PollClaim(
            job_id=row.id,
            provider=row.provider,
            upstream_id=row.upstream_id,
            spec=row.spec,
            upstream_model=row.upstream_model,
            upstream_state=row.upstream_state,
            progress=row.progress,
            poll_count=row.poll_count,
            step_attempts=row.step_attempts,
            submitted_at=row.submitted_at,
            lease_until=row.next_poll_at,
        )
        for row in result
    ]


async def claim_due_polls(conn: AsyncConnection, *, limit: int, lease_s: float) -> list[PollClaim]:
    """Claim up to ``limit`` waiting jobs whose poll is due, oldest due first. Rows other
    pollers hold are skipped, so any number of pollers share the work."""
    result = await conn.execute(
        sa.text(
            "UPDATE jobs SET next_poll_at = now() + make_interval(secs => :lease)"
            " WHERE id IN (SELECT id FROM jobs WHERE state = 'waiting'"
            " AND next_poll_at <= now() AND upstream_id IS NOT NULL"
            " ORDER BY next_poll_at LIMIT :limit FOR UPDATE SKIP LOCKED) " + _CLAIM_RETURNING
        ),
        {"lease": lease_s, "limit": limit},
    )
    return _claims(result)


async def claim_poll(conn: AsyncConnection, job_id: str, *, lease_s: float) -> PollClaim | None:
    """Claim one waiting job whether or not its poll is due."""
    result = await conn.execute(
        sa.text(
            "UPDATE jobs SET next_poll_at = now() + make_interval(secs => :lease)"
            " WHERE id = :id AND state = 'waiting' AND upstream_id IS NOT NULL " + _CLAIM_RETURNING
        ),
        {"lease": lease_s, "id": job_id},
    )
    claims = _claims(result)
    return claims[0] if claims else None


@dataclass(frozen=True, slots=True)
class PollReschedule:
    """A polled job still running upstream: when to read it next, and what it showed."""

    claim: PollClaim
    delay_s: float
    progress: int
    poll_count: int
    step_attempts: int


async def reschedule_polls(conn: AsyncConnection, items: list[PollReschedule]) -> int:
    """Write back a batch of polls in one statement. A row whose ``next_poll_at`` no
    longer holds the claim's lease was changed meanwhile (a nudge made it due now, or
    the job moved on) and is left as it is. Returns how many rows were written."""
    if not items:
        return 0
    result = await conn.execute(
        sa.text(
            "UPDATE jobs SET next_poll_at = now() + make_interval(secs => u.delay),"
            " progress = u.progress, poll_count = u.poll_count,"
            " step_attempts = u.step_attempts, updated_at = now()"
            " FROM unnest(CAST(:ids AS text[]), CAST(:leases AS timestamptz[]),"
            " CAST(:delays AS float8[]), CAST(:progress AS int[]), CAST(:polls AS int[]),"
            " CAST(:attempts AS int[])) AS u(id, lease, delay, progress, poll_count,"
            " step_attempts)"
            " WHERE jobs.id = u.id AND jobs.state = 'waiting' AND jobs.next_poll_at = u.lease"
        ),
        {
            "ids": [i.claim.job_id for i in items],
            "leases": [i.claim.lease_until for i in items],
            "delays": [i.delay_s for i in items],
            "progress": [i.progress for i in items],
            "polls": [i.poll_count for i in items],
            "attempts": [i.step_attempts for i in items],
        },
    )
    return int(result.rowcount)


@dataclass(frozen=True, slots=True)
class PollDone:
    """A polled job its provider reports succeeded: moved to ``finalizing`` with the
    others of its batch in one statement."""

    claim: PollClaim
    cost: Decimal | None


# What a status read leaves to write: read again later, or move on to finalize.
PollOutcome = PollReschedule | PollDone


async def finish_polls(conn: AsyncConnection, items: list[PollDone], *, progress: int) -> list[str]:
    """``waiting`` -> ``finalizing`` for a batch, with the provider's cost where it gave
    one. A job no longer waiting (cancelled meanwhile, or moved on by another read) is
    left as it is. Returns the ids moved, for their finalize steps."""
    if not items:
        return []
    result = await conn.execute(
        sa.text(
            "UPDATE jobs SET state = 'finalizing', progress = :progress,"
            " poll_count = u.poll_count, step_attempts = 0, next_poll_at = NULL,"
            " cost = COALESCE(u.cost, jobs.cost), updated_at = now()"
            " FROM unnest(CAST(:ids AS text[]), CAST(:polls AS int[]),"
            " CAST(:costs AS numeric[])) AS u(id, poll_count, cost)"
            " WHERE jobs.id = u.id AND jobs.state = 'waiting'"
            " RETURNING jobs.id"
        ),
        {
            "progress": progress,
            "ids": [i.claim.job_id for i in items],
            "polls": [i.claim.poll_count + 1 for i in items],
            "costs": [i.cost for i in items],
        },
    )
    return [row[0] for row in result]


def db_now(*, after_s: float = 0.0) -> sa.ColumnElement[dt.datetime]:
    """The database's clock (plus ``after_s``), as a value to write: no round trip to
    read it first."""
    now: sa.ColumnElement[dt.datetime] = sa.func.now()
    if after_s:
        return now + sa.literal(dt.timedelta(seconds=after_s))
    return now


async def make_poll_due(conn: AsyncConnection, job_id: str) -> bool | None:
    """Pull a waiting job's next poll forward to now, unless it is backing off after an
    upstream error (the provider may have asked for that delay). None when the job is
    not waiting; else whether the poll moved."""
    row = (
        await conn.execute(
            sa.text(
                "UPDATE jobs SET next_poll_at = CASE WHEN step_attempts > 0 THEN next_poll_at"
                " ELSE LEAST(COALESCE(next_poll_at, now()), now()) END"
                " WHERE id = :id AND state = 'waiting'"
                " RETURNING step_attempts = 0"
            ),
            {"id": job_id},
        )
    ).first()
    return None if row is None else bool(row[0])


async def next_poll_due_in(conn: AsyncConnection) -> float | None:
    """Seconds until the earliest waiting job's poll is due (<= 0: overdue); None when
    no job waits."""
    value = await conn.scalar(
        sa.text(
            "SELECT EXTRACT(EPOCH FROM (min(next_poll_at) - now())) FROM jobs"
            " WHERE state = 'waiting'"
        )
    )
    return None if value is None else float(value)


async def notify_pollers(conn: AsyncConnection) -> None:
    """Wake sleeping pollers when the transaction commits."""
    await conn.execute(sa.text(f"NOTIFY {POLL_CHANNEL}"))


# --- planner statistics of the step queue (engine/queue_stats.py) ----------------------

# Steps that are queued or running: the rows procrastinate's fetch looks through.
_LIVE_STEPS = "FROM procrastinate_jobs WHERE status IN ('todo', 'doing')"


@dataclass(frozen=True, slots=True)
class QueueRows:
    live: int  # steps queued or running now
    planned: float  # how many the planner expects, from the last ANALYZE


async def queue_rows(conn: AsyncConnection) -> QueueRows:
    live = await conn.scalar(sa.text(f"SELECT count(*) {_LIVE_STEPS}"))
    plan = await conn.scalar(sa.text(f"EXPLAIN (FORMAT JSON) SELECT 1 {_LIVE_STEPS}"))
    planned = _plan_rows(plan)
    return QueueRows(live=int(live or 0), planned=planned)


def _plan_rows(plan: Any) -> float:
    # psycopg hands EXPLAIN's JSON over parsed or as text, by server version and driver.
    if isinstance(plan, str):
        plan = json.loads(plan)
    return float(plan[0]["Plan"]["Plan Rows"])


async def analyze_queue(conn: AsyncConnection) -> None:
    """Refresh the planner's statistics of the step queue. A role that does not own
    the table gets a warning from PostgreSQL, not an error."""
    await conn.execute(sa.text("ANALYZE procrastinate_jobs"))
