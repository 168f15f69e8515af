"""Providers with their calls measured: each submit, status, fetch and cancel timed
and each failure counted, per deployment, in the process's metrics
(``vidgate_upstream_request_duration_seconds``, ``vidgate_upstream_errors_total``).

A wrapper rather than a line in every adapter: the adapters stay pure mapping and I/O,
and no call can be left out.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from vidgate.core.spec import JobSpec
from vidgate.metrics import UPSTREAM_DURATION, UPSTREAM_ERRORS
from vidgate.providers.base import (
    ProgressCallback,
    Provider,
    ProviderError,
    SubmitResult,
    UpstreamStatus,
    UpstreamTask,
)

T = TypeVar("T")


class MeteredProvider:
    """``inner`` under the deployment name ``deployment``, every call measured."""

    def __init__(self, deployment: str, inner: Provider) -> None:
        self.deployment = deployment
        self.inner = inner
        self.name = inner.name

    async def _measured(self, operation: str, call: Callable[[], Awaitable[T]]) -> T:
        started = time.perf_counter()
        try:
            return await call()
        except ProviderError as exc:
            UPSTREAM_ERRORS.labels(self.deployment, operation, exc.code).inc()
            raise
        except Exception:
            # Not translated by the adapter (a bug, or cancellation at shutdown).
            UPSTREAM_ERRORS.labels(self.deployment, operation, "unexpected").inc()
            raise
        finally:
            UPSTREAM_DURATION.labels(self.deployment, operation).observe(
                time.perf_counter() - started
            )

    def validate(self, spec: JobSpec, upstream_model: str | None) -> None:
        self.inner.validate(spec, upstream_model)

    async def submit(
        self, spec: JobSpec, *, idempotency_key: str, upstream_model: str | None
    ) -> SubmitResult:
        return await self._measured(
            "submit",
            lambda: self.inner.submit(
                spec, idempotency_key=idempotency_key, upstream_model=upstream_model
            ),
        )

    async def status(self, task: UpstreamTask) -> UpstreamStatus:
        return await self._measured("status", lambda: self.inner.status(task))

    async def fetch(
        self, task: UpstreamTask, dest_dir: Path, progress: ProgressCallback | None = None
    ) -> list[Path]:
        return await self._measured("fetch", lambda: self.inner.fetch(task, dest_dir, progress))

    async def cancel(self, task: UpstreamTask) -> None:
        await self._measured("cancel", lambda: self.inner.cancel(task))

    async def probe(self) -> None:
        await self._measured("probe", self.inner.probe)

    async def aclose(self) -> None:
        await self.inner.aclose()


def metered(providers: dict[str, Provider]) -> dict[str, Provider]:
    """The same providers, by the same deployment names, each measured."""
    return {name: MeteredProvider(name, provider) for name, provider in providers.items()}
