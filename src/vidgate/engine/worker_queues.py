"""The queues a worker can be limited to (``vidgate worker --queues``,
``VIDGATE_WORKER_QUEUES``): a few public names, each for a kind of work that may belong
on some hosts and not others (finalize where the media storage and CPU are, polling
anywhere, local models on GPU hosts).

Housekeeping (the sweeper, the queue statistics, pruning) is no queue: every worker runs
it, whatever its queues; each pass is safe with several workers at once.
"""

from __future__ import annotations

from collections.abc import Iterable

SUBMIT = "submit"
POLL = "poll"
MEDIA = "media"
WEBHOOKS = "webhooks"
CANCEL = "cancel"
GPU = "gpu"

# Each name and what a worker that takes it runs.
QUEUES: dict[str, str] = {
    SUBMIT: "submissions of queued jobs to their providers (engine/submitter.py)",
    POLL: "status reads of waiting jobs, and the late-result watch (engine/poller.py,"
    " engine/late_results.py)",
    MEDIA: "finalize: results downloaded, probed, stored (engine/finalizer.py), and their"
    " previews after completion (procrastinate queue `previews`)",
    WEBHOOKS: "per-request webhooks (procrastinate queue `webhooks`) and webhook endpoints'"
    " deliveries (engine/endpoint_deliverer.py)",
    CANCEL: "upstream cancels (procrastinate queue `jobs`)",
    GPU: "reserved for local models; runs nothing yet",
}
ALL = frozenset(QUEUES)


class UnknownQueue(ValueError):
    """A queue name that is not one of ``QUEUES``."""


def parse_queues(values: Iterable[str] | str | None) -> frozenset[str]:
    """The queues named in ``values`` (names, each possibly a comma-separated list, as
    repeated ``--queues`` options or ``VIDGATE_WORKER_QUEUES`` give them); all of them
    when none is named. An unknown name is refused with the valid ones."""
    if isinstance(values, str):
        values = [values]
    names = [n.strip().lower() for value in values or () for n in value.split(",") if n.strip()]
    unknown = [n for n in names if n not in QUEUES]
    if unknown:
        raise UnknownQueue(
            f"unknown queue{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))};"
            f" the queues are:"
            f" {', '.join(QUEUES)}"
        )
    return frozenset(names) or ALL
