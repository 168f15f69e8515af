"""Settings, read once from the environment (``VIDGATE_*``) and CLI flags, then passed down.

Nothing reads settings at import time: ``Settings()`` is built in ``cli.py`` (or a test)
and handed to ``create_app`` / the worker.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_data_dir() -> Path:
    return Path.home() / ".vidgate"


def half_the_cores() -> int:
    return max(1, (os.cpu_count() or 2) // 2)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VIDGATE_", extra="ignore")

    data_dir: Path = Field(default_factory=default_data_dir)
    # Any PostgreSQL; when unset, an embedded server lives in ``data_dir/pg``.
    database_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    # Operator catalogue overrides (YAML), merged over the built-in one.
    models_file: Path | None = None
    # URL prefix used in signed download links; defaults to the request's own base URL.
    public_base_url: str | None = None

    max_body_bytes: int = 32 * 1024 * 1024
    # Connection limits of `serve` (api/protocol.py): open connections at once; time
    # for a request's headers, then for its body; size and count of its header fields.
    max_connections: int = 1000
    header_timeout_s: float = 10.0
    body_timeout_s: float = 60.0
    max_header_bytes: int = 64 * 1024
    max_header_count: int = 100
    max_image_bytes: int = 20 * 1024 * 1024
    # Total deadline of an image URL's fetch at create, from the DNS lookup to the last
    # byte (a peer that trickles its body is cut off here, not only when it goes silent).
    image_fetch_timeout_s: float = 10.0
    # Memory that decoded images may hold at once in one process (the API's checks of
    # input images and the sandbox's backgrounds together), in bytes. An image whose
    # decode alone needs more is refused; others wait for room (media/budget.py).
    image_memory_bytes: int = Field(default=512 * 1024 * 1024, ge=1)
    # Only for tests and trusted networks: allow http:// and private hosts in the URLs
    # vidgate fetches (input images) and calls (webhooks).
    allow_insecure_urls: bool = False
    # Total deadline of one webhook POST, from the DNS lookup to the answer's status.
    webhook_timeout_s: float = 10.0
    webhook_max_attempts: int = 8
    signed_url_ttl_s: int = 3600

    # Total deadline of one provider API call (submit, status, cancel, token), besides
    # each deployment's per-read ``timeout_s``; a deployment whose ``timeout_s`` is
    # longer keeps that as its total.
    upstream_timeout_s: float = 60.0
    # Largest provider API answer held in memory (decoded).
    upstream_max_response_bytes: int = 32 * 1024 * 1024
    # Total deadline of one result download (finalize), besides its size cap.
    download_timeout_s: float = 900.0
    # How long vidgate waits for a submitted task to finish upstream; then it is
    # cancelled there and the job goes on as after an upstream_timeout (engine/failover.py).
    upstream_task_timeout_s: float = Field(default=24 * 3600.0, gt=0)
    # A job failed for that limit keeps its task watched (engine/late_results.py): read
    # every ``late_result_poll_s``, for ``late_result_watch_s`` after the failure; a
    # task that succeeds meanwhile completes the job, and it is settled then.
    late_result_poll_s: float = Field(default=600.0, gt=0)
    late_result_watch_s: float = Field(default=48 * 3600.0, ge=0)

    # Webhook deliveries in flight at once, per worker, on the ``webhooks`` queue. Most
    # of a delivery's time is spent waiting on another server, so this is well above
    # the core count.
    webhook_concurrency: int = 32
    # Upstream cancels in flight at once, per worker, on the ``jobs`` queue: their own
    # slots, so a backlog of webhooks never holds one back.
    cancel_concurrency: int = 8
    # Webhook deliveries in flight at once per destination (host:port) and per tenant,
    # per worker process. One over either cap is put back on the queue a moment later,
    # without holding a slot or counting an attempt.
    webhook_per_destination: int = 4
    webhook_per_tenant: int = 8
    # Deprecated: the cancel and webhook steps' shared concurrency before they had a
    # queue each. When set (``vidgate worker --concurrency``), it is the default of
    # ``webhook_concurrency``.
    worker_concurrency: int | None = None
    # Finalize steps (download, probe, store) at once, per worker: mostly waiting on
    # downloads, the media threads, fsync and the database, so a burst of results on a
    # busy machine is bound by how many wait at once (bench B3, results at 34/s on a
    # third of a core: 16 left 1,047 jobs to finalize when the creates ended, 64 left
    # 77, at the same jobs/s per core).
    media_concurrency: int = 64
    # Threads for the CPU-bound part of finalizing (the probe), per
    # worker process. Each holds the GIL for much of its work, so every one added takes
    # turns away from the event loop (API requests, status reads): with a thread per
    # finalize step, a burst of results made B3's status reads run 8 s late.
    media_threads: int = Field(default_factory=half_the_cores)
    # Submissions waiting on their providers at once, per worker (engine/submitter.py).
    submit_concurrency: int = 32
    # Status reads of waiting jobs in flight at once, per worker (engine/poller.py).
    poll_concurrency: int = 32
    # How often a worker looks for scheduled (schedule_in) jobs; new jobs arrive by NOTIFY.
    worker_fetch_interval_s: float = 0.5
    heartbeat_interval_s: float = 2.0
    # A `doing` job whose worker has been silent this long is re-queued by the sweeper.
    stalled_after_s: float = 10.0
    sweep_interval_s: float = 15.0
    # How often a worker checks that the planner's idea of the step queue's size is not
    # far behind the truth (engine/queue_stats.py).
    queue_stats_interval_s: float = 2.0
    # Upper bound for a job step that keeps failing unexpectedly before the job fails.
    max_step_attempts: int = 8

    # How long a request waits for a database connection (a free pooled one, or a new
    # one) before it is answered 503: with the database down, requests fail fast.
    db_timeout_s: float = 5.0

    # Simulated upstream latency of the sandbox provider (overridable per job by metadata).
    sandbox_latency_s: float = 3.0

    log_level: str = "INFO"
    log_json: bool = False

    # --- processes (issue 14): worker queues, shutdown, housekeeping ------------------
    # The queues a `vidgate worker` takes (engine/worker_queues.py), comma-separated;
    # unset: all. `vidgate worker --queues` overrides it; `serve` always runs all.
    worker_queues: str | None = None
    # SIGTERM (or Ctrl-C) to exit: at most this long. Steps in flight get all of it but
    # a margin (engine/shutdown.py) to finish, then are handed back to other workers.
    shutdown_timeout_s: float = Field(default=30.0, gt=0)
    # Housekeeping (engine/housekeeping.py): how often every worker prunes, the rows
    # per delete statement, and how old each kind of row must be to go.
    housekeeping_interval_s: float = Field(default=300.0, gt=0)
    housekeeping_batch: int = Field(default=1000, ge=1)
    finished_steps_retention_s: float = Field(default=7 * 86400.0, gt=0)
    # An idempotency key's window: a repeated create within it gets the same job.
    idempotency_key_ttl_s: float = Field(default=86400.0, gt=0)
    sandbox_task_retention_s: float = Field(default=7 * 86400.0, gt=0)
    webhook_delivery_retention_s: float = Field(default=30 * 86400.0, gt=0)

    # --- burst (issue 14): previews after completion (engine/previews.py).
    # Previews steps run at once, per worker; each waits while finalize steps are queued.
    previews_concurrency: int = 1

    @model_validator(mode="after")
    def _legacy_worker_concurrency(self) -> Settings:
        if (
            self.worker_concurrency is not None
            and "webhook_concurrency" not in self.model_fields_set
        ):
            self.webhook_concurrency = self.worker_concurrency
        return self

    @property
    def media_dir(self) -> Path:
        return self.data_dir / "media"

    @property
    def pg_dir(self) -> Path:
        return self.data_dir / "pg"

    # --- storage (issue 14): where blobs live (media/stores.py) and how links serve them.
    # ``s3://bucket/prefix`` for an S3-compatible bucket (credentials, region and
    # endpoint from the standard AWS variables); unset: ``data_dir/media``.
    storage_url: str | None = None
    # Content links of S3 storage: ``stream`` (vidgate reads the object and answers,
    # Range included) or ``presigned`` (a redirect to a presigned GET of the object,
    # valid as long as vidgate's own signed link).
    storage_links: Literal["stream", "presigned"] = "stream"
    # Files larger than this go to S3 in parts of this size (AWS takes 5 MiB and up).
    storage_part_size: int = Field(default=16 * 1024 * 1024, ge=1024)
    # How often a worker deletes the media of deleted and expired videos, and the
    # objects no job references any more (engine/media_gc.py).
    media_sweep_interval_s: float = Field(default=30.0, gt=0)
    # --- ops (issue 14): metrics -------------------------------------------------------
    # Prometheus metrics: /metrics on the API, HTTP latency and bytes counted at the
    # edge. Off: neither (bench B1 measures the difference).
    metrics: bool = True
    # How long the API keeps the cluster's numbers read from the database for /metrics:
    # scrapes within it share one read (services/metrics.py).
    metrics_cache_s: float = Field(default=2.0, ge=0)
    # `vidgate worker` serves its own process's metrics at /metrics on this port
    # (on VIDGATE_HOST); unset: not served.
    metrics_port: int | None = None
    # --- status hold (issue 14, bench B7): engine/status_hold.py -----------------------
    # A status read of a job that is finishing (finalizing, or just past its expected
    # end) waits up to this long for it to complete; 0: reads never wait. A second: a
    # read that starts a quarter second before the expected end must outlast the
    # poller noticing the end and the finalize (0.3-0.5 s in B7); one that gives up
    # first costs a client that sleeps its interval after each answer the hold too.
    status_hold_ms: int = Field(default=1000, ge=0)
    # Status reads held at once per process; beyond it, reads answer at once.
    status_hold_max_reads: int = Field(default=1000, ge=0)
