"""The contract between the job engine and an upstream video service.

Four coroutines, nothing optional: submit a normalized spec, read the upstream task's
status, fetch its finished outputs to local files, cancel it. What a provider can do
beyond that is declared in the catalogue (capabilities), not as stub methods here.

Adapters translate every upstream failure into ``ProviderError`` at their boundary;
the engine decides from ``retryable`` and ``retry_after_s`` alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Literal, Protocol

from vidgate.core.spec import JobSpec

UpstreamState = Literal["queued", "running", "succeeded", "failed", "cancelled"]
ProgressCallback = Callable[[float], None]


class ProviderError(Exception):
    def __init__(
        self,
        code: str,
        message: str,
        *,
        retryable: bool,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retryable = retryable
        self.retry_after_s = retry_after_s


@dataclass(frozen=True, slots=True)
class SubmitResult:
    upstream_id: str
    # When the first status check is worth making.
    poll_after_s: float


@dataclass(frozen=True, slots=True)
class UpstreamStatus:
    state: UpstreamState
    progress: int | None = None
    poll_after_s: float | None = None
    error_code: str | None = None
    error_message: str | None = None
    # What the provider says the job cost, where it says so.
    cost: Decimal | None = None


class Provider(Protocol):
    name: str

    async def submit(
        self, spec: JobSpec, *, idempotency_key: str, upstream_model: str | None
    ) -> SubmitResult: ...

    async def status(self, upstream_id: str) -> UpstreamStatus: ...

    async def fetch(
        self, upstream_id: str, dest_dir: Path, progress: ProgressCallback | None = None
    ) -> list[Path]:
        """Write each finished video (``spec.n`` of them) into ``dest_dir``; return the paths."""
        ...

    async def cancel(self, upstream_id: str) -> None: ...
