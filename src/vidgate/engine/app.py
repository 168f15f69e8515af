"""The procrastinate app and the worker: the job steps of its queues, the sweeper and
the rest of the housekeeping, and its way out (engine/shutdown.py)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import procrastinate
import structlog

from vidgate.db.embedded import to_libpq_uri
from vidgate.engine import steps, worker_queues
from vidgate.engine.context import EngineContext
from vidgate.engine.delivery_gate import DeliveryGate
from vidgate.engine.endpoint_deliverer import EndpointDeliverer
from vidgate.engine.finalizer import Finalizer
from vidgate.engine.housekeeping import run_housekeeping
from vidgate.engine.late_results import run_late_results
from vidgate.engine.media_gc import run_media_sweeper
from vidgate.engine.poller import Poller
from vidgate.engine.queue_stats import run_queue_stats
from vidgate.engine.shutdown import Shutdown
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


async def run_worker(
    ctx: EngineContext,
    *,
    name: str = "vidgate-worker",
    queues: frozenset[str] = worker_queues.ALL,
    shutdown: Shutdown | None = None,
) -> None:
    """Process the job steps of ``queues`` (engine/worker_queues.py) until ``shutdown``
    is requested, then stop as engine/shutdown.py says; cancelled, the same at once.

    ``submit``: the submitter; ``poll``: the poller and the late-result watch;
    ``media``: the finalizer (on CPU and disk; these three claim from the job rows),
    and a procrastinate worker on ``previews`` (thumbnails and spritesheets after
    completion; and one on ``media`` for finalize tasks an older version queued);
    ``cancel``, ``webhooks``: procrastinate workers on the queues ``jobs`` (upstream
    cancels) and ``webhooks`` (deliveries, waiting on servers the clients chose; the
    webhook endpoints' deliverer with them), each with slots of its own; ``gpu``:
    nothing yet.
    Every worker runs the sweeper, the queue statistics keeper and the housekeeping;
    those that take ``media``, the media sweeper (engine/media_gc.py)."""
    settings = ctx.settings
    shutdown = shutdown or Shutdown(settings.shutdown_timeout_s)
    gate = DeliveryGate(
        per_destination=settings.webhook_per_destination, per_tenant=settings.webhook_per_tenant
    )
    context = {CONTEXT_KEY: ctx, GATE_KEY: gate}
    # Safe anywhere and cut short at once on the way out: each pass is idempotent.
    housekeeping = [
        asyncio.create_task(run_sweeper(ctx), name="vidgate-sweeper"),
        asyncio.create_task(run_queue_stats(ctx), name="vidgate-queue-stats"),
        asyncio.create_task(run_housekeeping(ctx), name="vidgate-housekeeping"),
    ]
    if worker_queues.MEDIA in queues:
        # Where media is: with storage on a host's disk, another host would forget blobs
        # whose files it cannot delete.
        housekeeping.append(
            asyncio.create_task(run_media_sweeper(ctx), name="vidgate-media-sweeper")
        )
    # These stop by themselves once the shutdown is requested, finishing or handing
    # back what they have in flight.
    loops: list[asyncio.Task[None]] = []
    if worker_queues.SUBMIT in queues:
        submitter = Submitter(ctx, concurrency=settings.submit_concurrency)
        loops.append(asyncio.create_task(submitter.run(shutdown), name="vidgate-submitter"))
    if worker_queues.POLL in queues:
        poller = Poller(ctx, concurrency=settings.poll_concurrency)
        loops.append(asyncio.create_task(poller.run(shutdown), name="vidgate-poller"))
        loops.append(
            asyncio.create_task(run_late_results(ctx, shutdown), name="vidgate-late-results")
        )
    if worker_queues.MEDIA in queues:
        finalizer = Finalizer(ctx, concurrency=settings.media_concurrency)
        loops.append(asyncio.create_task(finalizer.run(shutdown), name="vidgate-finalizer"))
    if worker_queues.WEBHOOKS in queues:
        # Projects' webhook endpoints, under the same caps as per-request webhooks.
        deliverer = EndpointDeliverer(ctx, concurrency=settings.webhook_concurrency, gate=gate)
        loops.append(
            asyncio.create_task(deliverer.run(shutdown), name="vidgate-endpoint-deliverer")
        )
    # Cancelling one of these is procrastinate's graceful stop: no more fetches, the
    # running steps get the drain time, then are aborted (and handed back, HAND_BACK).
    fetchers = [
        asyncio.create_task(worker, name=f"{name}-{queue}")
        for public, queue, concurrency in (
            (worker_queues.CANCEL, steps.QUEUE, settings.cancel_concurrency),
            (worker_queues.WEBHOOKS, steps.WEBHOOK_QUEUE, settings.webhook_concurrency),
            # Finalize tasks an older version queued: each only makes its job due.
            (worker_queues.MEDIA, steps.MEDIA_QUEUE, 1),
            # Where the media is: a preview is made from the stored video.
            (worker_queues.MEDIA, steps.PREVIEWS_QUEUE, settings.previews_concurrency),
        )
        if public in queues
        for worker in _procrastinate_workers(
            ctx, context, f"{name}-{queue}", queue, concurrency, shutdown.drain_s
        )
    ]
    for task in (*housekeeping, *loops, *fetchers):
        task.add_done_callback(_report_part_end)
    log.info("worker.started", queues=",".join(q for q in worker_queues.QUEUES if q in queues))
    try:
        await shutdown.wait()
    finally:
        # Reached on request, or at once when cancelled (the same sequence, started now).
        shutdown.request()
        for task in (*housekeeping, *fetchers):
            task.cancel()
        everything = [*housekeeping, *loops, *fetchers]
        _, late = await asyncio.wait(everything, timeout=shutdown.left())
        for task in late:
            task.cancel()
        await asyncio.gather(*everything, return_exceptions=True)
        log.info("worker.stopped", late=len(late))


@contextlib.asynccontextmanager
async def worker_beside(
    ctx: EngineContext, shutdown: Shutdown | None = None
) -> AsyncIterator[None]:
    """``run_worker`` as a task of the current event loop while the block runs (``serve``:
    the API and a worker in one process). At the end of the block it is awaited: it
    stops by itself once ``shutdown`` is requested (``serve``'s signal handler does
    that as uvicorn starts its own graceful shutdown), and is cancelled otherwise."""
    worker = asyncio.create_task(run_worker(ctx, shutdown=shutdown), name="vidgate-worker")
    worker.add_done_callback(_report_worker_end)
    try:
        yield
    finally:
        if shutdown is None or not shutdown.requested:
            worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker


def _report_part_end(task: asyncio.Task[None]) -> None:
    """A part of the worker that died on an error stops its work until the process
    restarts: say so (the others go on)."""
    if not task.cancelled() and task.exception() is not None:
        log.error("worker.part_died", part=task.get_name(), exc_info=task.exception())


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
    ctx: EngineContext,
    context: dict[str, Any],
    name: str,
    queue: str,
    concurrency: int,
    drain_s: float,
) -> list[Coroutine[Any, Any, None]]:
    shares = fetcher_shares(concurrency)
    fetchers = len(shares)
    return [
        _procrastinate_worker(
            ctx, context, f"{name}-{i}" if fetchers > 1 else name, queue, share, drain_s
        )
        for i, share in enumerate(shares)
    ]


async def _procrastinate_worker(
    ctx: EngineContext,
    context: dict[str, Any],
    name: str,
    queue: str,
    concurrency: int,
    drain_s: float,
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
                # Cancelled (engine/shutdown.py): the steps running then get this
                # long to finish before they are aborted and handed back.
                shutdown_graceful_timeout=drain_s,
            )
            error = "stopped"
        except Exception as exc:
            error = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else repr(exc)
        if time.monotonic() - started > _RESTART_MAX_S * 6:
            delay = _RESTART_MIN_S  # it had been running well: a new incident
        log.warning("worker.restart", worker=name, error=error, retry_in_s=delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, _RESTART_MAX_S)
