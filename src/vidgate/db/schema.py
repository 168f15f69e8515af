"""vidgate's tables, as the queries see them. The migrations under ``db/migrations`` are the
truth; tests/integration/test_schema.py fails when these tables and theirs differ."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

metadata = sa.MetaData()

tenants = sa.Table(
    "tenants",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, nullable=False, unique=True),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    # Standard Webhooks signing secret ("whsec_..."), made on first use.
    sa.Column("webhook_secret", sa.Text),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("tenant_id", sa.Text, sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    # First characters of the secret, safe to show in listings and logs.
    sa.Column("prefix", sa.Text, nullable=False),
    sa.Column("secret_hash", sa.LargeBinary, nullable=False, unique=True),
    sa.Column("mode", sa.Text, nullable=False),
    # operator (every project), admin (its project), member (videos), reader (read only).
    sa.Column("role", sa.Text, nullable=False, server_default="member"),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Column("revoked_at", sa.DateTime(timezone=True)),
    sa.CheckConstraint("mode IN ('test', 'live')", name="api_keys_mode"),
    sa.CheckConstraint("role IN ('operator', 'admin', 'member', 'reader')", name="api_keys_role"),
)

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("tenant_id", sa.Text, sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("api_key_id", sa.Text, sa.ForeignKey("api_keys.id"), nullable=False),
    sa.Column("mode", sa.Text, nullable=False),
    sa.Column("model", sa.Text, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("spec", JSONB, nullable=False),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("progress", sa.Integer, nullable=False, server_default="0"),
    sa.Column("error_code", sa.Text),
    sa.Column("error_message", sa.Text),
    sa.Column("provider", sa.Text, nullable=False),
    sa.Column("upstream_model", sa.Text),
    sa.Column("upstream_id", sa.Text),
    # What the adapter keeps about its task besides the id (providers/base.py).
    sa.Column("upstream_state", JSONB),
    sa.Column("estimated_cost", sa.Numeric(12, 6)),
    sa.Column("cost", sa.Numeric(12, 6)),
    # Unexpected failures of the current step; bounded by Settings.max_step_attempts.
    sa.Column("step_attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("poll_count", sa.Integer, nullable=False, server_default="0"),
    # When a waiting job's upstream status is read next (engine/poller.py). A poller
    # that claims the job moves it a lease ahead, so a dead poller's claim runs out.
    sa.Column("next_poll_at", sa.DateTime(timezone=True)),
    # When a queued job is submitted upstream (engine/submitter.py); the same lease
    # scheme as next_poll_at while a submitter holds it in ``submitting``.
    sa.Column("submit_at", sa.DateTime(timezone=True)),
    sa.Column("source_video_id", sa.Text),
    sa.Column("webhook_url", sa.Text),
    # Deployments a submission already failed on, so fallback moves on to the next one.
    sa.Column("tried_providers", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
    # Upstream tasks that failed transiently and went to another deployment (at most one,
    # engine/failover.py).
    sa.Column("task_retries", sa.Integer, nullable=False, server_default="0"),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Column(
        "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Column("submitted_at", sa.DateTime(timezone=True)),
    sa.Column("completed_at", sa.DateTime(timezone=True)),
    sa.Column("deleted_at", sa.DateTime(timezone=True)),
    sa.CheckConstraint(
        "state IN ('queued', 'submitting', 'waiting', 'finalizing',"
        " 'completed', 'failed', 'cancelled')",
        name="jobs_state",
    ),
    sa.CheckConstraint("progress BETWEEN 0 AND 100", name="jobs_progress"),
)
deployment_health = sa.Table(
    "deployment_health",
    metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("consecutive_failures", sa.Integer, nullable=False, server_default="0"),
    # While in the future, routing keeps the deployment out (an open circuit breaker).
    sa.Column("open_until", sa.DateTime(timezone=True)),
    sa.Column("last_error", sa.Text),
    # Opened by an auth failure rather than by errors piling up.
    sa.Column("unhealthy", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column(
        "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
)

# Listing is per tenant in id order (ids are time-ordered), skipping deleted jobs.
sa.Index(
    "jobs_tenant_id_idx", jobs.c.tenant_id, jobs.c.id, postgresql_where=jobs.c.deleted_at.is_(None)
)
sa.Index(
    "jobs_provider_inflight_idx",
    jobs.c.provider,
    postgresql_where=jobs.c.state.in_(["submitting", "waiting"]),
)
# The poller's scan: waiting jobs in order of when they are due.
sa.Index("jobs_poll_due_idx", jobs.c.next_poll_at, postgresql_where=jobs.c.state == "waiting")
# The submitter's scan: jobs to submit in order of when they are due.
sa.Index(
    "jobs_submit_due_idx",
    jobs.c.submit_at,
    postgresql_where=jobs.c.state.in_(["queued", "submitting"]),
)
sa.Index(
    "jobs_active_idx",
    jobs.c.state,
    postgresql_where=jobs.c.state.in_(["queued", "submitting", "waiting", "finalizing"]),
)

blobs = sa.Table(
    "blobs",
    metadata,
    sa.Column("sha256", sa.Text, primary_key=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("content_type", sa.Text, nullable=False),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
)

job_outputs = sa.Table(
    "job_outputs",
    metadata,
    sa.Column("job_id", sa.Text, sa.ForeignKey("jobs.id"), primary_key=True),
    sa.Column("index", sa.Integer, primary_key=True),
    sa.Column("video_sha256", sa.Text, sa.ForeignKey("blobs.sha256"), nullable=False),
    sa.Column("thumbnail_sha256", sa.Text, sa.ForeignKey("blobs.sha256"), nullable=False),
    sa.Column("spritesheet_sha256", sa.Text, sa.ForeignKey("blobs.sha256"), nullable=False),
    sa.Column("width", sa.Integer, nullable=False),
    sa.Column("height", sa.Integer, nullable=False),
    sa.Column("fps", sa.Float, nullable=False),
    sa.Column("duration", sa.Float, nullable=False),
    sa.Column("size_bytes", sa.BigInteger, nullable=False),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
)

idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("tenant_id", sa.Text, sa.ForeignKey("tenants.id"), primary_key=True),
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("request_hash", sa.Text, nullable=False),
    sa.Column("job_id", sa.Text, sa.ForeignKey("jobs.id"), nullable=False),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
)

# Instance-wide secrets (the URL signing key), in the database so every replica shares them.
instance_secrets = sa.Table(
    "instance_secrets",
    metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("value", sa.LargeBinary, nullable=False),
)

# The sandbox provider's own "upstream" task store. It stands in for a remote service,
# so it keeps its state apart from `jobs` and dedupes submissions by idempotency key.
sandbox_tasks = sa.Table(
    "sandbox_tasks",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("idempotency_key", sa.Text, nullable=False, unique=True),
    sa.Column("request", JSONB, nullable=False),
    sa.Column("latency_s", sa.Float, nullable=False),
    sa.Column("fail_code", sa.Text),
    sa.Column("submit_calls", sa.Integer, nullable=False, server_default="1"),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Column("cancelled_at", sa.DateTime(timezone=True)),
)

# Every admin action: who (a key id, or "cli"), on which project, what, from where.
audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("actor", sa.Text, nullable=False),
    sa.Column("tenant_id", sa.Text, sa.ForeignKey("tenants.id")),
    sa.Column("action", sa.Text, nullable=False),
    sa.Column("target", sa.Text),
    sa.Column("detail", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    sa.Column("remote_addr", sa.Text),
)
sa.Index("audit_log_tenant_idx", audit_log.c.tenant_id, audit_log.c.id)

# Money, one signed row per job and step (migration 0010 says how balances derive).
ledger = sa.Table(
    "ledger",
    metadata,
    sa.Column("job_id", sa.Text, sa.ForeignKey("jobs.id"), primary_key=True),
    sa.Column("step", sa.Text, primary_key=True),
    sa.Column("tenant_id", sa.Text, sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("api_key_id", sa.Text, sa.ForeignKey("api_keys.id"), nullable=False),
    sa.Column("amount", sa.Numeric(12, 6), nullable=False),
    sa.Column("booked_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.CheckConstraint("step IN ('reserve', 'settle', 'release')", name="ledger_step"),
)
sa.Index("ledger_tenant_booked_idx", ledger.c.tenant_id, ledger.c.booked_at)
sa.Index("ledger_key_booked_idx", ledger.c.api_key_id, ledger.c.booked_at)

# --- settle: late results (migration 0014) ------------------------------------------
# When the upstream task of a job failed by vidgate's own wait limit is read next
# (engine/late_results.py); NULL: not watched.
jobs.append_column(sa.Column("late_check_at", sa.DateTime(timezone=True)))
sa.Index(
    "jobs_late_check_idx",
    jobs.c.late_check_at,
    postgresql_where=jobs.c.late_check_at.is_not(None),
)

# --- prices (migration 0015): per-project price overrides, and usage's index.

# A project's price for one model (the card's id): a multiplier or a table, never both.
price_overrides = sa.Table(
    "price_overrides",
    metadata,
    sa.Column("tenant_id", sa.Text, sa.ForeignKey("tenants.id"), primary_key=True),
    sa.Column("model", sa.Text, primary_key=True),
    sa.Column("multiplier", sa.Numeric(12, 6)),
    sa.Column("pricing", JSONB),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Column(
        "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.CheckConstraint("(multiplier IS NULL) <> (pricing IS NULL)", name="price_overrides_one"),
)
# Usage counts a project's completed jobs by the day they completed.
sa.Index(
    "jobs_tenant_completed_idx",
    jobs.c.tenant_id,
    jobs.c.completed_at,
    postgresql_where=jobs.c.state == "completed",
)

# Limits (migration 0012): creates per minute and jobs in flight, per key and per
# project; NULL is no limit.
for _owner, _name in ((tenants, "tenants"), (api_keys, "api_keys")):
    _owner.append_column(sa.Column("rpm", sa.Integer))
    _owner.append_column(sa.Column("max_concurrent", sa.Integer))
    _owner.append_constraint(sa.CheckConstraint("rpm > 0", name=f"{_name}_rpm"))
    _owner.append_constraint(
        sa.CheckConstraint("max_concurrent > 0", name=f"{_name}_max_concurrent")
    )

# One row per create accepted under a creates-per-minute limit, for the scopes that
# have one ("key:<id>", "project:<tenant id>"), pruned as the window slides.
limit_admissions = sa.Table(
    "limit_admissions",
    metadata,
    sa.Column("scope", sa.Text, nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
)
sa.Index("limit_admissions_scope_at_idx", limit_admissions.c.scope, limit_admissions.c.at)
# Jobs in flight of a project, or of one of its keys.
sa.Index(
    "jobs_inflight_owner_idx",
    jobs.c.tenant_id,
    jobs.c.api_key_id,
    postgresql_where=jobs.c.state.in_(["queued", "submitting", "waiting", "finalizing"]),
)

# --- hooks: webhook endpoints per project (migration 0016) ---------------------------
# Deliveries are written by the trigger vidgate_webhook_events on ``jobs`` (see the
# migration), in the transaction of the state change they announce.
webhook_endpoints = sa.Table(
    "webhook_endpoints",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("tenant_id", sa.Text, sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("events", ARRAY(sa.Text), nullable=False),
    # Standard Webhooks secrets ("whsec_..."). After a rotation the previous one signs
    # too until ``previous_secret_expires_at``.
    sa.Column("secret", sa.Text, nullable=False),
    sa.Column("previous_secret", sa.Text),
    sa.Column("previous_secret_expires_at", sa.DateTime(timezone=True)),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    # Since the first failed attempt after the last success; NULL while it answers.
    sa.Column("failing_since", sa.DateTime(timezone=True)),
    sa.Column("disabled_at", sa.DateTime(timezone=True)),
    sa.Column("disabled_reason", sa.Text),
)
sa.Index("webhook_endpoints_tenant_idx", webhook_endpoints.c.tenant_id, webhook_endpoints.c.id)

# One event for one endpoint; the due ones are claimed like the job rows (engine/due.py).
webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    # vidgate_new_id('whd'), made by the trigger: time-ordered like core/ids.py's.
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column(
        "endpoint_id",
        sa.Text,
        sa.ForeignKey("webhook_endpoints.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("job_id", sa.Text, sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    sa.Column("event_id", sa.Text, nullable=False),
    sa.Column("event_type", sa.Text, nullable=False),
    # The event's JSON as signed and sent, fixed when the state changed.
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False, server_default="pending"),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    # False for a resend: one attempt, no retries.
    sa.Column("retry", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Column(
        "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.CheckConstraint(
        "status IN ('pending', 'delivered', 'failed')", name="webhook_deliveries_status"
    ),
    sa.UniqueConstraint("endpoint_id", "event_id", name="webhook_deliveries_event"),
)
sa.Index(
    "webhook_deliveries_endpoint_idx", webhook_deliveries.c.endpoint_id, webhook_deliveries.c.id
)
sa.Index(
    "webhook_deliveries_due_idx",
    webhook_deliveries.c.next_attempt_at,
    postgresql_where=webhook_deliveries.c.status == "pending",
)

webhook_delivery_attempts = sa.Table(
    "webhook_delivery_attempts",
    metadata,
    sa.Column(
        "delivery_id",
        sa.Text,
        sa.ForeignKey("webhook_deliveries.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("attempt", sa.Integer, primary_key=True),
    sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("status_code", sa.Integer),
    sa.Column("error", sa.Text),
    sa.Column("latency_ms", sa.Integer, nullable=False),
    sa.Column("response_snippet", sa.Text),
)

# --- budgets (issue 13): a USD cap per project or key and per UTC period (migration 0013).
budgets = sa.Table(
    "budgets",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("tenant_id", sa.Text, sa.ForeignKey("tenants.id"), nullable=False),
    # NULL: the project's own budget; else the budget of this key of the project.
    sa.Column("api_key_id", sa.Text, sa.ForeignKey("api_keys.id")),
    sa.Column("period", sa.Text, nullable=False),
    sa.Column("usd", sa.Numeric(12, 6), nullable=False),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Column(
        "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.CheckConstraint("period IN ('day', 'month', 'total')", name="budgets_period"),
    sa.CheckConstraint("usd >= 0", name="budgets_usd"),
)
sa.Index(
    "budgets_project_period_idx",
    budgets.c.tenant_id,
    budgets.c.period,
    unique=True,
    postgresql_where=budgets.c.api_key_id.is_(None),
)
sa.Index(
    "budgets_key_period_idx",
    budgets.c.api_key_id,
    budgets.c.period,
    unique=True,
    postgresql_where=budgets.c.api_key_id.isnot(None),
)

# --- access (issue 13): keys limited to some models, keys that expire (migration 0011).
# models: the card ids the key may use, NULL for every model; expires_at: NULL for never.
api_keys.append_column(sa.Column("models", sa.ARRAY(sa.Text)))
api_keys.append_column(sa.Column("expires_at", sa.DateTime(timezone=True)))
# The admin API lists a project's keys, oldest first, a page at a time.
sa.Index("api_keys_tenant_idx", api_keys.c.tenant_id, api_keys.c.id)

# --- storage (issue 14): retention, media deletion (migration 0017) ------------------
# retention_days: how long a project keeps its videos' media; NULL: forever.
tenants.append_column(
    sa.Column(
        "retention_days",
        sa.Integer,
        sa.CheckConstraint("retention_days > 0", name="tenants_retention_days"),
    )
)
# expires_at: when the video's media expires (set by the trigger vidgate_media_expiry
# as the job completes); media_deleted_at: when its outputs were released.
jobs.append_column(sa.Column("expires_at", sa.DateTime(timezone=True)))
jobs.append_column(sa.Column("media_deleted_at", sa.DateTime(timezone=True)))
sa.Index(
    "jobs_media_expiry_idx",
    jobs.c.expires_at,
    postgresql_where=sa.and_(jobs.c.expires_at.isnot(None), jobs.c.media_deleted_at.is_(None)),
)
sa.Index(
    "jobs_media_deleted_idx",
    jobs.c.deleted_at,
    postgresql_where=sa.and_(jobs.c.deleted_at.isnot(None), jobs.c.media_deleted_at.is_(None)),
)
# What refers to a blob, found by index (engine/media_gc.py).
sa.Index("job_outputs_video_idx", job_outputs.c.video_sha256)
sa.Index("job_outputs_thumbnail_idx", job_outputs.c.thumbnail_sha256)
sa.Index("job_outputs_spritesheet_idx", job_outputs.c.spritesheet_sha256)
for _ref in ("image", "last_frame", "source"):
    # As PostgreSQL prints it back, which Alembic compares with.
    _sha = f"((spec -> '{_ref}'::text) ->> 'sha256'::text)"
    sa.Index(
        f"jobs_{_ref}_blob_idx",
        sa.text(_sha),
        _table=jobs,
        postgresql_where=sa.text(f"{_sha} IS NOT NULL"),
    )

# Blobs that lost a reference: the sweeper deletes each once nothing refers to it.
blob_deletions = sa.Table(
    "blob_deletions",
    metadata,
    sa.Column("sha256", sa.Text, primary_key=True),
    sa.Column(
        "requested_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
)

# --- ops (issue 14): jobs that reached each final state, per model (migration 0021).
# Kept by the trigger vidgate_count_job_end on ``jobs``; a scrape sums the shards
# (db/cluster_metrics.py).
job_counts = sa.Table(
    "job_counts",
    metadata,
    sa.Column("state", sa.Text, primary_key=True),
    sa.Column("model", sa.Text, primary_key=True),
    sa.Column("shard", sa.SmallInteger, primary_key=True),
    sa.Column("n", sa.BigInteger, nullable=False),
)

# --- procs (issue 14): the housekeeping's indexes (migration 0018) --------------------
# Its bounded deletes (db/housekeeping.py) take the oldest rows first. (Its index on
# procrastinate_jobs is procrastinate's table, not described here.)
sa.Index("idempotency_keys_created_idx", idempotency_keys.c.created_at)
sa.Index("sandbox_tasks_created_idx", sandbox_tasks.c.created_at)
sa.Index(
    "webhook_deliveries_finished_idx",
    webhook_deliveries.c.updated_at,
    postgresql_where=webhook_deliveries.c.status != "pending",
)
# --- latency (issue 14): when a waiting job's upstream task is expected to end, as the
# poller's schedule placed it (engine/poll_schedule.py; migration 0020). NULL: unknown.
jobs.append_column(sa.Column("expected_end_at", sa.DateTime(timezone=True)))

# --- burst (issue 14): previews made after completion (migration 0019). NULL until the
# low-priority previews step, or the first request for one, has made it.
job_outputs.c.thumbnail_sha256.nullable = True
job_outputs.c.spritesheet_sha256.nullable = True

# --- batch finalize (issue 14): the finalizer's scan, finalizing jobs in order of when
# their finalize is due (``next_poll_at``; engine/finalizer.py; migration 0022).
sa.Index(
    "jobs_finalize_due_idx", jobs.c.next_poll_at, postgresql_where=jobs.c.state == "finalizing"
)

# --- console-api (issue 15): a video's webhook deliveries, read by job for its details
# page (db/video_details.py; migration 0023).
sa.Index("webhook_deliveries_job_idx", webhook_deliveries.c.job_id)
