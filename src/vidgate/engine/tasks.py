"""procrastinate tasks: thin wrappers that hand each step to the ``JobRunner``.

Submissions and status reads are not tasks: engine/submitter.py and engine/poller.py
claim them from the job rows in batches."""

from __future__ import annotations

import procrastinate

from vidgate.engine import steps
from vidgate.engine.context import EngineContext
from vidgate.engine.runner import JobRunner
from vidgate.engine.webhooks import deliver

blueprint = procrastinate.Blueprint()

CONTEXT_KEY = "vidgate"


def _runner(context: procrastinate.JobContext) -> JobRunner:
    ctx: EngineContext = context.additional_context[CONTEXT_KEY]
    return JobRunner(ctx)


@blueprint.task(name=steps.FINALIZE.partition(":")[2], queue=steps.MEDIA_QUEUE, pass_context=True)
async def finalize(context: procrastinate.JobContext, job_id: str) -> None:
    runner = _runner(context)
    await runner.guarded(steps.FINALIZE, job_id, runner.finalize)


@blueprint.task(name=steps.CANCEL_UPSTREAM.partition(":")[2], queue=steps.QUEUE, pass_context=True)
async def cancel_upstream(context: procrastinate.JobContext, job_id: str) -> None:
    await _runner(context).cancel_upstream(job_id)


@blueprint.task(name=steps.WEBHOOK.partition(":")[2], queue=steps.QUEUE, pass_context=True)
async def webhook(context: procrastinate.JobContext, job_id: str, attempt: int = 1) -> None:
    await deliver(context.additional_context[CONTEXT_KEY], job_id, attempt)
