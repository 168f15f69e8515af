"""Names of the steps that move a job along, and how to enqueue the ones that are
procrastinate tasks (all but submit and finalize, which engine/submitter.py and
engine/finalizer.py claim from the job rows).

Every enqueue happens on the caller's open transaction, so a state change and the task
that continues from it commit together or not at all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import procrastinate
from sqlalchemy.ext.asyncio import AsyncConnection

from vidgate.db.database import raw_connection

# Upstream cancels (``cancel_concurrency``). Webhooks sat here too before they had a
# queue of their own; one enqueued by that version is moved to ``webhooks`` when it
# runs (engine/tasks.py).
QUEUE = "jobs"
# Finalize steps queued by a version before finalize was claimed from the job rows
# (engine/finalizer.py): each now only makes its job due for the finalizer.
MEDIA_QUEUE = "media"
# Webhook deliveries (``webhook_concurrency``): waits on servers the clients chose, so
# apart from cancels, which a full backlog of slow receivers must never hold back.
WEBHOOK_QUEUE = "webhooks"
# Thumbnails and spritesheets, made after the job completed (engine/previews.py): a
# queue of their own (``previews_concurrency``), whose steps wait while finalizes are
# due, so that preview work never slows a burst of finishes.
PREVIEWS_QUEUE = "previews"
NAMESPACE = "vidgate"
# Steps, not tasks: their retries are due times on the job row (engine/submitter.py,
# engine/finalizer.py). FINALIZE is also the old task's name, kept registered.
SUBMIT = "vidgate:submit"
FINALIZE = "vidgate:finalize"
CANCEL_UPSTREAM = "vidgate:cancel_upstream"
WEBHOOK = "vidgate:webhook"
PREVIEWS = "vidgate:previews"

QUEUE_FOR = {FINALIZE: MEDIA_QUEUE, WEBHOOK: WEBHOOK_QUEUE, PREVIEWS: PREVIEWS_QUEUE}
# Within a queue procrastinate runs higher priorities first: on ``jobs``, cancels go
# ahead of webhooks left there by an older version.
PRIORITY = {CANCEL_UPSTREAM: 10}


def job_lock(job_id: str) -> str:
    """The lock every step of a job holds: one step of a job at a time."""
    return f"job:{job_id}"


def cancel_lock(job_id: str) -> str:
    """Cancelling must not wait behind a step of the job (a slow finalize, a submit
    backing off), which holds the job's own lock until it runs."""
    return f"cancel:{job_id}"


def previews_lock(job_id: str) -> str:
    """The job is completed when its previews step runs: it need not wait for (nor hold
    back) the job's other steps, only for another previews step of the job."""
    return f"previews:{job_id}"


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


async def enqueue_many(
    app: procrastinate.App,
    conn: AsyncConnection,
    step: str,
    job_ids: list[str],
    *,
    lock: Callable[[str], str] = job_lock,
    **task_kwargs: Any,
) -> None:
    """``enqueue`` for many jobs in one statement, each with its own lock (``lock`` of
    its id: the job's lock unless said otherwise) and ``task_kwargs``."""
    if not job_ids:
        return
    jobs = [
        procrastinate.jobs.Job(
            queue=QUEUE_FOR.get(step, QUEUE),
            priority=PRIORITY.get(step, 0),
            lock=lock(job_id),
            queueing_lock=None,
            task_name=step,
            task_kwargs={"job_id": job_id, **task_kwargs},
        )
        for job_id in job_ids
    ]
    await app.job_manager.batch_defer_jobs_async(jobs, connection=await raw_connection(conn))
