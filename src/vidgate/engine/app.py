"""The procrastinate app and the worker loop (job steps plus the sweeper)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import procrastinate
import structlog

from vidgate.db.embedded import to_libpq_uri
from vidgate.engine import steps
from vidgate.engine.context import EngineContext
from vidgate.engine.delivery_gate import DeliveryGate
from vidgate.engine.endpoint_deliverer import EndpointDeliverer
from vidgate.engine.late_results import run_late_results
from vidgate.engine.media_gc import run_media_sweeper
from vidgate.engine.poller import Poller
from vidgate.engine.queue_stats import run_queue_stats
from vidgate.engine.submitter import Submitter
from vidgate.engine.sweeper import run_sweeper
from vidgate.engine.tasks import CONTEXT_KEY, GATE_KEY, blueprint

log = structlog.get_logger("vidgate.engine")

# Backoff between restarts of a procrastinate worker that stopped on an error.
_RESTART_MIN_S = 0.5
_RESTART_MAX_S = 10.0


def create_procrastinate_app(database_url: str, *, pool_size: int = 10) -> procrastinate.App:
    connector = procrastinate.PsycopgConnector(
        conninfo=to_libpq_uri(database_url), min_size=1, max_size=pool_size
    )
    app = procrastinate.App(connector=connector)
    app.add_tasks_from(blueprint, namespace=steps.NAMESPACE)
    return app


async def run_worker(ctx: EngineContext, *, name: str = "vidgate-worker") -> None:
    """Process job steps until cancelled: the submitter and the poller (steps claimed
    from the job rows), procrastinate workers per queue (``jobs``: upstream cancels;
    ``webhooks``: deliveries, waiting on servers the clients chose; ``media``:
    finalize, on CPU and disk), each queue with slots of its own, and the sweeper, the
    queue statistics keeper and the webhook endpoints' deliverer beside them."""
    settings = ctx.settings
    gate = DeliveryGate(
        per_destination=settings.webhook_per_destination, per_tenant=settings.webhook_per_tenant
    )
    context = {CONTEXT_KEY: ctx, GATE_KEY: gate}
    side = [
        asyncio.create_task(run_sweeper(ctx), name="vidgate-sweeper"),
        asyncio.create_task(run_queue_stats(ctx), name="vidgate-queue-stats"),
        asyncio.create_task(run_media_sweeper(ctx), name="vidgate-media-sweeper"),
        asyncio.create_task(run_late_results(ctx), name="vidgate-late-results"),
        asyncio.create_task(
            Submitter(ctx, concurrency=settings.submit_concurrency).run(), name="vidgate-submitter"
        ),
        asyncio.create_task(
            Poller(ctx, concurrency=settings.poll_concurrency).run(), name="vidgate-poller"
        ),
        # Projects' webhook endpoints, under the same caps as per-request webhooks.
        asyncio.create_task(
            EndpointDeliverer(ctx, concurrency=settings.webhook_concurrency, gate=gate).run(),
            name="vidgate-endpoint-deliverer",
        ),
    ]
    try:
        await asyncio.gather(
            *_procrastinate_workers(
                ctx, context, f"{name}-jobs", steps.QUEUE, settings.cancel_concurrency
            ),
            *_procrastinate_workers(
                ctx, context, f"{name}-webhooks", steps.WEBHOOK_QUEUE, settings.webhook_concurrency
            ),
            *_procrastinate_workers(
                ctx, context, f"{name}-media", steps.MEDIA_QUEUE, settings.media_concurrency
            ),
        )
    finally:
        for task in side:
            task.cancel()
        for task in side:
            with contextlib.suppress(asyncio.CancelledError):
                await task


@contextlib.asynccontextmanager
async def worker_beside(ctx: EngineContext) -> AsyncIterator[None]:
    """``run_worker`` as a task of the current event loop while the block runs (``serve``:
    the API and a worker in one process), cancelled and awaited when it ends."""
    worker = asyncio.create_task(run_worker(ctx), name="vidgate-worker")
    worker.add_done_callback(_report_worker_end)
    try:
        yield
    finally:
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker


def _report_worker_end(task: asyncio.Task[None]) -> None:
    """The worker runs until shutdown; an end before that must not go unnoticed."""
    if not task.cancelled() and task.exception() is not None:
        log.error("worker.died", exc_info=task.exception())


# Steps one procrastinate worker runs at once. A worker fetches its steps one query at a
# time, each a few event-loop turns; with the loop busy (an API under load in the same
# process) that alone capped submissions near 30/s, whatever the concurrency. Several
# workers on one queue fetch side by side.
STEPS_PER_FETCHER = 8


def fetcher_shares(concurrency: int) -> list[int]:
    """How ``concurrency`` steps are split between workers on one queue: as few workers
    as give each at most ``STEPS_PER_FETCHER``, as evenly as possible."""
    fetchers = max(1, -(-concurrency // STEPS_PER_FETCHER))
    return [concurrency // fetchers + (i < concurrency % fetchers) for i in range(fetchers)]


def _procrastinate_workers(
    ctx: EngineContext, context: dict[str, Any], name: str, queue: str, concurrency: int
) -> list[Coroutine[Any, Any, None]]:
    shares = fetcher_shares(concurrency)
    fetchers = len(shares)
    return [
        _procrastinate_worker(ctx, context, f"{name}-{i}" if fetchers > 1 else name, queue, share)
        for i, share in enumerate(shares)
    ]


async def _procrastinate_worker(
    ctx: EngineContext, context: dict[str, Any], name: str, queue: str, concurrency: int
) -> None:
    """One procrastinate worker, started again whenever it stops on an error.

    procrastinate stops a worker when its database connection fails (its fetch loop
    raises, or a side task such as the heartbeat does). Without this, a database
    restart left the process serving requests with no worker behind them.
    """
    settings = ctx.settings
    delay = _RESTART_MIN_S
    while True:
        started = time.monotonic()
        try:
            await ctx.app.run_worker_async(
                name=name,
                queues=[queue],
                concurrency=concurrency,
                fetch_job_polling_interval=settings.worker_fetch_interval_s,
                abort_job_polling_interval=settings.worker_fetch_interval_s * 4,
                update_heartbeat_interval=settings.heartbeat_interval_s,
                stalled_worker_timeout=settings.stalled_after_s,
                # The same dict for every worker of the process: one DeliveryGate for all.
                additional_context=context,
                install_signal_handlers=False,
                delete_jobs="successful",
                shutdown_graceful_timeout=5,
            )
            error = "stopped"
        except Exception as exc:
            error = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else repr(exc)
        if time.monotonic() - started > _RESTART_MAX_S * 6:
            delay = _RESTART_MIN_S  # it had been running well: a new incident
        log.warning("worker.restart", worker=name, error=error, retry_in_s=delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, _RESTART_MAX_S)
