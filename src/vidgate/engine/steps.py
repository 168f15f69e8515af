"""Names of the procrastinate tasks that move a job along, and how to enqueue them.

Every enqueue happens on the caller's open transaction, so a state change and the task
that continues from it commit together or not at all.
"""

from __future__ import annotations

from typing import Any

import procrastinate
from sqlalchemy.ext.asyncio import AsyncConnection

from vidgate.db.database import raw_connection

QUEUE = "jobs"
# Finalize (download, probe, previews: CPU and disk) runs on a queue of its own with its
# own concurrency (``media_concurrency``), so that neither kind of step starves the
# other: a burst of results never holds back submissions, nor creates the results.
MEDIA_QUEUE = "media"
NAMESPACE = "vidgate"
SUBMIT = "vidgate:submit"
FINALIZE = "vidgate:finalize"
CANCEL_UPSTREAM = "vidgate:cancel_upstream"
WEBHOOK = "vidgate:webhook"

QUEUE_FOR = {FINALIZE: MEDIA_QUEUE}
# Within a queue procrastinate runs higher priorities first: cancels and webhooks (few,
# and about jobs that already ended) go ahead of a backlog of submissions.
PRIORITY = {CANCEL_UPSTREAM: 10, WEBHOOK: 10}

# The step that continues a job from each active state but ``waiting``, which the
# poller (engine/poller.py) advances from the job row.
STEP_FOR_STATE = {
    "queued": SUBMIT,
    "submitting": SUBMIT,
    "finalizing": FINALIZE,
}


def job_lock(job_id: str) -> str:
    """The lock every step of a job holds: one step of a job at a time."""
    return f"job:{job_id}"


def cancel_lock(job_id: str) -> str:
    """Cancelling must not wait behind a step of the job (a slow finalize, a submit
    backing off), which holds the job's own lock until it runs."""
    return f"cancel:{job_id}"


async def enqueue(
    app: procrastinate.App,
    conn: AsyncConnection,
    step: str,
    job_id: str,
    *,
    delay_s: float = 0.0,
    lock: str | None = None,
    priority: int | None = None,
    **task_kwargs: Any,
) -> None:
    options: dict[str, Any] = {
        "connection": await raw_connection(conn),
        "queue": QUEUE_FOR.get(step, QUEUE),
        # One step of a job at a time, even when a stalled step is retried.
        "lock": lock or job_lock(job_id),
    }
    if priority is None:
        priority = PRIORITY.get(step)
    if priority is not None:
        options["priority"] = priority
    if delay_s > 0:
        options["schedule_in"] = {"seconds": delay_s}
    await app.configure_task(step, **options).defer_async(job_id=job_id, **task_kwargs)
