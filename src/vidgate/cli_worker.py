"""``vidgate worker --queues``: the option, and the queues it and
``VIDGATE_WORKER_QUEUES`` choose (engine/worker_queues.py), refused when unknown."""

from __future__ import annotations

from typing import Annotated

import typer

from vidgate.cli_common import err
from vidgate.config import Settings
from vidgate.engine.worker_queues import UnknownQueue, parse_queues

QueuesOption = Annotated[
    list[str] | None,
    typer.Option(
        "--queues",
        metavar="QUEUES",
        help="Only these queues: submit, poll, media, webhooks, cancel, gpu (reserved);"
        " comma-separated or repeated. Default: VIDGATE_WORKER_QUEUES, else all.",
    ),
]


def chosen_queues(values: list[str] | None, settings: Settings) -> frozenset[str]:
    """The queues of ``--queues``, else of the setting, else all; exit status 2 with
    the valid names for an unknown one."""
    try:
        return parse_queues(values or settings.worker_queues)
    except UnknownQueue as exc:
        err.print(f"--queues: {exc}", highlight=False)
        raise typer.Exit(2) from None
