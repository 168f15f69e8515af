"""How the ``serve`` and ``worker`` processes end on SIGTERM or Ctrl-C; the worker's own
sequence (stop taking work, finish or hand back, within the bound) is
engine/shutdown.py's.

- The signals request the ``Shutdown`` (and, in ``serve``, uvicorn's graceful shutdown,
  at the same moment: uvicorn's own signal handlers are not installed).
- A watchdog ends the process at the bound (``shutdown_timeout_s``) whatever still
  hangs, as a ``kill -9`` would: exit status 1.
- Once the shutdown is done, ``leave`` runs the atexit handlers (the last user of the
  embedded PostgreSQL stops it) and ends the process at once. The interpreter would
  otherwise wait for threads still computing for steps already handed back (the
  sandbox's render of a clip, a probe in the media threads), past the bound; their
  work is redone by the step's next run, which first removes what an earlier run
  left, as after a ``kill -9`` (docs/architecture.md, "Crash safety").
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, NoReturn

import structlog
import uvicorn

from vidgate.engine.shutdown import Shutdown

log = structlog.get_logger("vidgate.shutdown")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def stop_on_signals(shutdown: Shutdown, *, also: Callable[[], None] | None = None) -> None:
    """SIGTERM and SIGINT request ``shutdown`` (after calling ``also``) and start the
    watchdog. On the running event loop's thread."""
    loop = asyncio.get_running_loop()

    def stop() -> None:
        if also is not None:
            also()
        if not shutdown.requested:
            shutdown.request()
            _start_watchdog(shutdown.timeout_s)

    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stop)


def _start_watchdog(timeout_s: float) -> None:
    timer = threading.Timer(timeout_s, _overrun, args=(timeout_s,))
    timer.daemon = True
    timer.start()


def _overrun(timeout_s: float) -> None:
    log.error("shutdown.overrun", timeout_s=timeout_s)
    _flush()
    os._exit(1)


def _flush() -> None:
    for handler in logging.getLogger().handlers:
        with contextlib.suppress(Exception):
            handler.flush()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


def run_then_leave(
    main: Coroutine[Any, Any, None],
    shutdown: Shutdown,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None,
) -> None:
    """Run ``main`` on an event loop of its own; once it returns after a requested
    shutdown, ``leave`` (before the loop's close, which waits for its executor's threads)."""
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(main)
        if shutdown.requested:
            leave(0)


def leave(status: int = 0) -> NoReturn:
    """End the process now, after its atexit handlers (see the module's docstring)."""
    _flush()
    atexit._run_exitfuncs()
    _flush()
    os._exit(status)


class SignalFreeServer(uvicorn.Server):
    """uvicorn's server without its own signal handlers: ``serve``'s handler sets
    ``should_exit`` (uvicorn's graceful shutdown) and requests the worker's shutdown at
    the same moment, and nothing re-raises the signal once uvicorn is done."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield
