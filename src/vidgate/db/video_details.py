"""One video's details in one statement: the job row, its outputs, whether its media
was released, and its webhook deliveries (a project's endpoints' rows, and the job's
own ``webhook_url`` summed up from its delivery steps in procrastinate's table, found
by their lock: engine/webhooks.py ``lock``)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from vidgate.core.jobs import OutputRecord
from vidgate.core.video_details import DeliveryRecord, VideoDetails
from vidgate.db.jobs import JOB_COLUMNS, job_from_row

_OUTPUT_FIELDS = [f.name for f in dataclasses.fields(OutputRecord)]
_WEBHOOK_TASK = "vidgate:webhook"

_DETAILS = sa.text(
    "SELECT "
    + ", ".join(f"j.{name}" for name in JOB_COLUMNS)
    + ", j.media_deleted_at IS NOT NULL AS media_released"
    # Outputs in index order.
    + ", (SELECT coalesce(json_agg(json_build_object("
    + ", ".join(f"'{name}', o.\"{name}\"" for name in _OUTPUT_FIELDS)
    + ") ORDER BY o.\"index\"), '[]') FROM job_outputs o WHERE o.job_id = j.id) AS outputs"
    # Endpoint deliveries, oldest first, with the status code of the last attempt.
    ", (SELECT coalesce(json_agg(json_build_object("
    "'id', d.id, 'event_type', d.event_type, 'url', e.url, 'status', d.status,"
    " 'attempts', d.attempts, 'created_at', d.created_at,"
    " 'last_status_code', (SELECT a.status_code FROM webhook_delivery_attempts a"
    "   WHERE a.delivery_id = d.id ORDER BY a.attempt DESC LIMIT 1)"
    ") ORDER BY d.id), '[]')"
    " FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id"
    " WHERE d.job_id = j.id) AS deliveries"
    # The job's own webhook: its delivery steps (one per attempt, and per wait for a
    # full cap), all holding the lock 'webhook:<job id>'.
    ", (SELECT json_build_object("
    "'attempts', max((p.args ->> 'attempt')::int),"
    " 'pending', bool_or(p.status IN ('todo', 'doing')))"
    " FROM procrastinate_jobs p WHERE p.lock = 'webhook:' || j.id"
    " AND p.task_name = :task) AS own_webhook"
    " FROM jobs j WHERE j.id = :id AND j.tenant_id = :tenant AND j.deleted_at IS NULL"
)


def _time(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value)


async def video_details(conn: AsyncConnection, job_id: str, tenant_id: str) -> VideoDetails | None:
    """The tenant's live (not deleted) job ``job_id`` with the rest; None if it has none."""
    row = (
        await conn.execute(_DETAILS, {"id": job_id, "tenant": tenant_id, "task": _WEBHOOK_TASK})
    ).first()
    if row is None:
        return None
    values = row._mapping
    job = job_from_row(row)
    outputs = [
        OutputRecord(**{**item, "fps": float(item["fps"]), "duration": float(item["duration"])})
        for item in values["outputs"]
    ]
    deliveries = [
        DeliveryRecord(
            id=item["id"],
            event_type=item["event_type"],
            url=item["url"],
            status=item["status"],
            attempts=item["attempts"],
            last_status_code=item["last_status_code"],
            created_at=_time(item["created_at"]),
        )
        for item in values["deliveries"]
    ]
    own: dict[str, Any] | None = values["own_webhook"]
    if job.webhook_url and own is not None and own["attempts"] is not None:
        deliveries.append(
            DeliveryRecord(
                # The webhook-id every attempt carries (engine/webhooks.py event_body).
                id=f"evt_{job.id}_{job.state}",
                event_type=f"video.{job.state}",
                url=job.webhook_url,
                status="pending" if own["pending"] else "ended",
                attempts=int(own["attempts"]),
                last_status_code=None,
                created_at=job.completed_at or job.updated_at,
            )
        )
    return VideoDetails(job, outputs, bool(values["media_released"]), deliveries)
