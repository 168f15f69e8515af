"""The contract between the job engine and an upstream video service.

Four coroutines per task, nothing optional: submit a normalized spec, read the upstream
task's status, fetch its finished outputs to local files, cancel it; besides them
``validate`` (at create), ``probe`` (is the deployment reachable, and are its
credentials taken: ``vidgate check``) and ``aclose`` (at shutdown). What a provider can
do beyond that is declared in the catalogue (capabilities), not as stub methods here.

``submit`` answers the upstream task's id and, where the adapter needs more than the id
to reach the task again (the endpoint that made it, say), a small JSON state. The engine
stores both on the job and hands them back, with the job's spec, as one ``UpstreamTask``
to ``status``, ``fetch`` and ``cancel``; nothing is packed into the id.

Adapters translate every upstream failure into ``ProviderError`` at their boundary;
the engine decides from ``retryable`` and ``retry_after_s`` alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Literal, Protocol

from pydantic import JsonValue

from vidgate.config import Settings
from vidgate.core.capabilities import CapabilityTable
from vidgate.core.catalog import builtin_upstreams
from vidgate.core.spec import JobSpec
from vidgate.media.storage import BlobStore

UpstreamState = Literal["queued", "running", "succeeded", "failed", "cancelled"]
# What an adapter keeps about a task besides its id: stored on the job as JSON.
TaskState = Mapping[str, JsonValue]


@dataclass(frozen=True)
class ProviderDeps:
    """What an adapter may use besides its own HTTP client."""

    blobs: BlobStore
    settings: Settings
    # A signed public URL of a stored input (sha256), for providers that only take URLs;
    # None when VIDGATE_PUBLIC_BASE_URL is not set (nothing outside can reach us then).
    input_url: Callable[[str], str] | None = None
    # The signed URL an upstream may call when a job's task changes state (job id ->
    # URL), for providers that take a callback at submit; None without
    # VIDGATE_PUBLIC_BASE_URL. A callback is only a hint: vidgate then reads the
    # task's status at once instead of at the next scheduled poll.
    callback_url: Callable[[str], str] | None = None
    # What each upstream model accepts (the catalogue's ``upstreams``); adapters check
    # a spec against it in ``validate``.
    capabilities: CapabilityTable = field(default_factory=builtin_upstreams)


ProgressCallback = Callable[[float], None]


class ProviderError(Exception):
    """An upstream failure, already classified.

    ``retryable``: worth trying again (429, 5xx, timeouts), after ``retry_after_s`` when
    the provider said so. ``unhealthy``: the deployment itself is broken (bad
    credentials), so routing keeps it out for a while. ``expired``: a result URL no
    longer works; the adapter may fetch a fresh one.
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        retryable: bool,
        retry_after_s: float | None = None,
        unhealthy: bool = False,
        expired: bool = False,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retryable = retryable
        self.retry_after_s = retry_after_s
        self.unhealthy = unhealthy
        self.expired = expired


@dataclass(frozen=True, slots=True)
class SubmitResult:
    upstream_id: str
    # When the first status check is worth making.
    poll_after_s: float
    # What status, fetch and cancel need besides the id; empty for most adapters.
    state: TaskState = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class UpstreamTask:
    """A submitted job's upstream task, as the engine hands it back to the adapter."""

    id: str
    spec: JobSpec
    upstream_model: str | None = None
    state: TaskState = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class UpstreamStatus:
    state: UpstreamState
    progress: int | None = None
    poll_after_s: float | None = None
    error_code: str | None = None
    error_message: str | None = None
    # What the provider says the job cost, where it says so.
    cost: Decimal | None = None
    # A failure that the same request may not meet again elsewhere (the provider's
    # internal error, out of memory, capacity, its own timeout), as opposed to a final
    # one (content refused, invalid input): the engine tries it once more on the next
    # healthy deployment (providers/failures.py, engine/failover.py).
    transient: bool = False


class Provider(Protocol):
    name: str

    def validate(self, spec: JobSpec, upstream_model: str | None) -> None:
        """Raise ``InvalidParameter`` for what this upstream cannot do: the catalogue's
        capability data for ``upstream_model`` (``deps.capabilities``), then what only
        the adapter knows. A 400 at create; run again right before ``submit``."""
        ...

    async def submit(
        self, spec: JobSpec, *, idempotency_key: str, upstream_model: str | None
    ) -> SubmitResult: ...

    async def status(self, task: UpstreamTask) -> UpstreamStatus: ...

    async def fetch(
        self, task: UpstreamTask, dest_dir: Path, progress: ProgressCallback | None = None
    ) -> list[Path]:
        """Write each finished video (``spec.n`` of them) into ``dest_dir``; return the paths."""
        ...

    async def cancel(self, task: UpstreamTask) -> None: ...

    async def probe(self) -> None:
        """One cheap authenticated call (list models, the account, or a status read of
        a task that does not exist), for ``vidgate check``: return when the upstream
        answers and takes the credentials; else ``ProviderError``, ``unhealthy`` for
        refused credentials, ``retryable`` for an upstream unreachable or failing."""
        ...

    async def aclose(self) -> None:
        """Release connections (called once at shutdown)."""
        ...
