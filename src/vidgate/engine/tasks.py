"""procrastinate tasks: thin wrappers that hand each step to the ``JobRunner``.

Submissions, status reads and finalizes are not tasks: engine/submitter.py,
engine/poller.py and engine/finalizer.py claim them from the job rows in batches."""

from __future__ import annotations

import procrastinate
from structlog.contextvars import bound_contextvars

from vidgate.db.finalize_claims import make_finalize_due, notify_finalizers
from vidgate.engine import steps, webhooks
from vidgate.engine.context import EngineContext
from vidgate.engine.delivery_gate import DeliveryGate
from vidgate.engine.runner import JobRunner
from vidgate.engine.shutdown import HAND_BACK

blueprint = procrastinate.Blueprint()

CONTEXT_KEY = "vidgate"
# The process's webhook caps (one ``DeliveryGate`` shared by all its workers).
GATE_KEY = "vidgate-webhook-gate"


def _runner(context: procrastinate.JobContext) -> JobRunner:
    ctx: EngineContext = context.additional_context[CONTEXT_KEY]
    return JobRunner(ctx)


# HAND_BACK: a step cut short by its worker's shutdown is ``todo`` again at once.
@blueprint.task(
    name=steps.FINALIZE.partition(":")[2],
    queue=steps.MEDIA_QUEUE,
    pass_context=True,
    retry=HAND_BACK,
)
async def finalize(context: procrastinate.JobContext, job_id: str) -> None:
    """Queued by a version before finalize was claimed from the job rows: the job is
    made due for the finalizer (engine/finalizer.py), which does the work."""
    ctx: EngineContext = context.additional_context[CONTEXT_KEY]
    async with ctx.db.begin() as conn:
        if await make_finalize_due(conn, job_id):
            await notify_finalizers(conn)


@blueprint.task(
    name=steps.PREVIEWS.partition(":")[2],
    queue=steps.PREVIEWS_QUEUE,
    pass_context=True,
    retry=HAND_BACK,
)
async def previews(context: procrastinate.JobContext, job_id: str) -> None:
    ctx: EngineContext = context.additional_context[CONTEXT_KEY]
    with bound_contextvars(job_id=job_id):
        await ctx.previews.for_job(job_id)


@blueprint.task(
    name=steps.CANCEL_UPSTREAM.partition(":")[2],
    queue=steps.QUEUE,
    pass_context=True,
    retry=HAND_BACK,
)
async def cancel_upstream(context: procrastinate.JobContext, job_id: str) -> None:
    with bound_contextvars(job_id=job_id):
        await _runner(context).cancel_upstream(job_id)


@blueprint.task(
    name=steps.WEBHOOK.partition(":")[2],
    queue=steps.WEBHOOK_QUEUE,
    pass_context=True,
    retry=HAND_BACK,
)
async def webhook(
    context: procrastinate.JobContext, job_id: str, attempt: int = 1, deferred: int = 0
) -> None:
    ctx: EngineContext = context.additional_context[CONTEXT_KEY]
    with bound_contextvars(job_id=job_id):
        if context.job.queue != steps.WEBHOOK_QUEUE:
            # Enqueued on the shared ``jobs`` queue before webhooks had one of their own:
            # moved there unsent, so that it never holds a cancel's slot.
            await webhooks.requeue(ctx, job_id, attempt=attempt, deferred=deferred)
            return
        gate: DeliveryGate = context.additional_context[GATE_KEY]
        await webhooks.deliver(ctx, job_id, attempt, gate=gate, deferred=deferred)
