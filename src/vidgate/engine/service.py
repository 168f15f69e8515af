"""What the API asks of the engine: create, read, list, delete jobs; check inputs.

Creation validates against the catalogue, prices, routes, stores the input images and
the job, enqueues its first step and reserves a live job's estimate against the
budgets that apply (engine/budgets.py) in one transaction. Nothing is written before the
whole request is valid: input images are only inspected (``inspect_input``) until
``create`` has normalized the spec, checked the webhook URL and found a route.

Every read is scoped to the caller's tenant, so another tenant's id behaves exactly
like an id that does not exist; so does an id that is not of vidgate's shape, which
never reaches the database (``_check_id``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import anyio
from sqlalchemy.ext.asyncio import AsyncConnection

from vidgate.core.access import check_model, check_writer
from vidgate.core.errors import (
    Conflict,
    InvalidParameter,
    NotFound,
    VideoNotReady,
)
from vidgate.core.ids import looks_like, new_id
from vidgate.core.jobs import JobRecord, JobState, OutputRecord
from vidgate.core.keys import Role
from vidgate.core.limits import Verdict
from vidgate.core.spec import ImageRef, SourceRef, VideoRequest, normalize
from vidgate.core.text import check_text
from vidgate.core.urls import check_outbound_url
from vidgate.core.video_filters import VideoFilter
from vidgate.db import writes
from vidgate.db.claims import notify_submitters
from vidgate.db.jobs import (
    claim_idempotency_key,
    db_now,
    find_idempotency_key,
    get_job,
    get_outputs,
    list_jobs,
    transition,
)
from vidgate.db.reads import EngineReads, JobReads
from vidgate.engine import budgets, limits, routing, steps
from vidgate.engine.context import EngineContext
from vidgate.engine.estimate import Estimate, estimate, no_deployment
from vidgate.engine.media_gc import hold_stored
from vidgate.engine.nudge import request_nudge
from vidgate.engine.prices import project_price
from vidgate.media.images import inspect_image_async


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: str
    tenant_id: str
    mode: Literal["test", "live"]
    role: Role = "member"
    # The card ids the key may use; None: every model (core/access.py).
    models: frozenset[str] | None = None

    @property
    def is_admin(self) -> bool:
        """An operator or a project admin."""
        return self.role in ("operator", "admin")


@dataclass(frozen=True, slots=True)
class InputImage:
    """An input image that passed inspection, not stored yet: ``ref`` goes into the
    request, ``data`` is written by ``JobService.create`` once the job will exist."""

    ref: ImageRef
    data: bytes


# A page of the video list: each job, with its output 0 where asked (else None).
Page = list[tuple[JobRecord, OutputRecord | None]]


class _Replay(Exception):
    """Raised inside the create transaction to roll it back and return a stored job."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id


def request_hash(spec: dict[str, Any], webhook_url: str | None) -> str:
    """Fingerprint of the normalized request (``JobSpec.model_dump(mode="json")``): the
    same video asked for through either shape, with numbers as strings or not, is the
    same request."""
    payload = {"spec": spec, "webhook_url": webhook_url}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _not_found(job_id: str) -> NotFound:
    return NotFound(f"no video with id {job_id!r}", param="video_id", code="video_not_found")


def _check_id(job_id: str) -> str:
    """``job_id`` if it is of vidgate's shape; else the same 404 as a missing video,
    before any query (a NUL, for one, would make PostgreSQL refuse the statement)."""
    if not looks_like("video", job_id):
        raise _not_found(job_id[:64])
    return job_id


class JobService:
    def __init__(self, ctx: EngineContext, reads: JobReads | None = None) -> None:
        self.ctx = ctx
        # The API's reads skip the engine when the runtime has a pool for them.
        self._reads = reads or EngineReads(ctx.db)

    async def inspect_input(self, data: bytes, *, param: str) -> InputImage:
        """Check ``data`` as an input image (raises ``InvalidImage`` naming ``param``)
        and describe it; nothing is stored (``create`` does that)."""

        # Decoded on the media layer's own threads, within its memory budget; waiting
        # for room there holds no thread of the shared pool.
        info = await inspect_image_async(
            data, max_bytes=self.ctx.settings.max_image_bytes, param=param
        )
        digest = await anyio.to_thread.run_sync(lambda: hashlib.sha256(data).hexdigest())
        ref = ImageRef(
            sha256=digest, width=info.width, height=info.height, content_type=info.content_type
        )
        return InputImage(ref, data)

    async def _store_inputs(self, conn: AsyncConnection, images: Sequence[InputImage]) -> None:
        """Write the request's images, in the create transaction: their rows commit
        with the job or not at all. (A file written for a create that then rolls back
        stays behind unreferenced; blobs are content-addressed, so it is reused by the
        next upload of the same bytes.)"""
        for image in {image.ref.sha256: image for image in images}.values():
            blob = await self.ctx.blobs.put_bytes(image.data)
            # Held until the job that refers to it commits (engine/media_gc.py).
            await hold_stored(conn, self.ctx.blobs, blob, image.ref.content_type, image.data)

    async def source(self, principal: Principal, video_id: str) -> SourceRef:
        """A completed video of the caller's, to remix or extend."""
        _check_id(video_id)
        async with self.ctx.db.connect() as conn:
            job = await self._owned(conn, principal, video_id)
            outputs = await get_outputs(conn, job.id)
        if job.state != JobState.COMPLETED or not outputs:
            raise VideoNotReady(
                f"video {video_id} is {job.state}; only a completed video can be used",
                param="video_id",
            )
        spec = job.spec
        return SourceRef(
            video_id=job.id,
            sha256=outputs[0].video_sha256,
            # What the stored file holds: for an extended video, source and extension.
            seconds=round(outputs[0].duration),
            provider=job.provider,
            upstream_id=job.upstream_id,
            upstream_state=job.upstream_state,
            width=spec.width,
            height=spec.height,
            fps=spec.fps,
        )

    async def create(
        self,
        principal: Principal,
        req: VideoRequest,
        *,
        images: Sequence[InputImage] = (),
        webhook_url: str | None = None,
        idempotency_key: str | None = None,
        on_limits: Callable[[Verdict], None] | None = None,
    ) -> JobRecord:
        """Validate, price, route and store a job. ``images`` are the inspected inputs
        that ``req`` refers to; they are written only once everything else passed.
        A create over the key's or project's rate limits raises ``RateLimited``; one
        within them, once committed, hands their state to ``on_limits``."""
        check_writer(principal.role)
        card = self.ctx.catalog.get(req.model)
        check_model(principal.models, card.id, req.model)
        spec = normalize(req, card)
        if webhook_url is not None:
            check_outbound_url(
                webhook_url,
                allow_insecure=self.ctx.settings.allow_insecure_urls,
                param="webhook_url",
            )
        job_id = new_id("video")
        stored_spec = spec.model_dump(mode="json")
        fingerprint = request_hash(stored_spec, webhook_url) if idempotency_key is not None else ""
        try:
            async with self.ctx.db.begin() as conn:
                if idempotency_key is not None:
                    held = await find_idempotency_key(conn, principal.tenant_id, idempotency_key)
                    if held is not None:
                        raise _Replay(self._check_replay(held, fingerprint))
                # The project's price (its override, else the list price), read in the
                # transaction that stores it.
                price = await project_price(
                    self.ctx, conn, principal.tenant_id, card, spec.resolution, spec.seconds
                )
                route = await routing.pick(
                    self.ctx,
                    conn,
                    card,
                    spec,
                    principal.mode,
                    prefer=spec.source.provider if spec.source else None,
                    strict=True,
                )
                if route is None:
                    raise no_deployment(card.id)
                verdict = await limits.admit(conn, principal.key_id)
                await self._store_inputs(conn, images)
                job = await writes.insert_job(
                    conn,
                    id=job_id,
                    tenant_id=principal.tenant_id,
                    api_key_id=principal.key_id,
                    mode=principal.mode,
                    # The name the client sent: an alias is echoed back as given.
                    model=req.model,
                    kind=spec.kind,
                    spec=spec,
                    stored_spec=stored_spec,
                    provider=route.provider,
                    upstream_model=route.upstream_model,
                    estimated_cost=None if price is None else price * spec.n,
                    source_video_id=spec.source.video_id if spec.source else None,
                    webhook_url=webhook_url,
                )
                if idempotency_key is not None:
                    held = await claim_idempotency_key(
                        conn, principal.tenant_id, idempotency_key, fingerprint, job_id
                    )
                    if held is not None:
                        # A concurrent request with the same key committed first.
                        raise _Replay(self._check_replay(held, fingerprint))
                await notify_submitters(conn)
                # Last: the budgets it locks are held only until the commit just after.
                await budgets.reserve(conn, job)
        except _Replay as replay:
            return await self.get(principal, replay.job_id, include_deleted=True)
        if verdict is not None and on_limits is not None:
            on_limits(verdict)
        return job

    async def estimate(self, principal: Principal, req: VideoRequest) -> Estimate:
        """What ``create`` would do with ``req``, without creating anything."""
        # A model the key may not create with, it may not price either.
        check_model(principal.models, self.ctx.catalog.get(req.model).id, req.model)
        return await estimate(self.ctx, principal.tenant_id, principal.mode, req)

    @staticmethod
    def _check_replay(held: tuple[str, str], fingerprint: str) -> str:
        held_hash, held_job = held
        if held_hash != fingerprint:
            raise Conflict(
                "this Idempotency-Key was already used with a different request body",
                param="Idempotency-Key",
                code="idempotency_key_reused",
            )
        return held_job

    async def _owned(
        self, conn: AsyncConnection, principal: Principal, job_id: str, *, for_update: bool = False
    ) -> JobRecord:
        job = await get_job(conn, job_id, tenant_id=principal.tenant_id, for_update=for_update)
        if job is None:
            raise _not_found(job_id)
        return job

    async def get(
        self, principal: Principal, job_id: str, *, include_deleted: bool = False
    ) -> JobRecord:
        job = await self._reads.job(
            _check_id(job_id), principal.tenant_id, include_deleted=include_deleted
        )
        if job is None:
            raise _not_found(job_id)
        return job

    async def hold(self, principal: Principal, job: JobRecord) -> JobRecord:
        """``job`` (not terminal) as a status read should answer it: a job that is
        finishing is waited for a moment (engine/status_hold.py)."""
        return await self.ctx.holds.hold(job, lambda: self.get(principal, job.id))

    async def get_with_outputs(
        self, principal: Principal, job_id: str
    ) -> tuple[JobRecord, list[OutputRecord]]:
        found = await self._reads.job_with_outputs(_check_id(job_id), principal.tenant_id)
        if found is None:
            raise _not_found(job_id)
        job, outputs = found
        # Outputs are recorded while a job finalizes; they are its content once completed.
        return job, outputs if job.state == JobState.COMPLETED else []

    async def outputs_unscoped(self, job_id: str) -> tuple[JobRecord, list[OutputRecord]]:
        """For signed URLs, whose signature already proves the right to read this job."""
        found = await self._reads.job_with_outputs(_check_id(job_id), None)
        if found is None:
            raise _not_found(job_id)
        return found

    async def list(
        self,
        principal: Principal,
        *,
        after: str | None,
        limit: int,
        order: Literal["asc", "desc"],
    ) -> tuple[list[JobRecord], bool]:
        rows, has_more = await self.page(principal, after=after, limit=limit, order=order)
        return [job for job, _ in rows], has_more

    async def page(
        self,
        principal: Principal,
        *,
        after: str | None,
        limit: int,
        order: Literal["asc", "desc"],
        where: VideoFilter | None = None,
        first_output: bool = False,
    ) -> tuple[Page, bool]:
        """A page of the caller's videos that match ``where``, each with its output 0
        when ``first_output`` (db/jobs.py ``list_jobs``), and whether more follow."""
        if after is not None and not looks_like("video", after):
            raise InvalidParameter(
                f"after {after[:64]!r} is not a video id; allowed: the id of a video, such"
                " as the last_id of the previous page",
                param="after",
            )
        async with self.ctx.db.connect() as conn:
            rows = await list_jobs(
                conn,
                principal.tenant_id,
                after=after,
                limit=limit + 1,
                order=order,
                where=where,
                first_output=first_output,
            )
        return rows[:limit], len(rows) > limit

    def model_names(self, model: str) -> frozenset[str]:
        """Every name the jobs of ``model``'s card may be stored under (its id and
        aliases); a name the catalogue does not know stands for itself."""
        # No stored name holds a control character, and PostgreSQL refuses a NUL.
        check_text(model, param="model")
        if model not in self.ctx.catalog:
            return frozenset({model})
        card = self.ctx.catalog.get(model)
        return frozenset({card.id, *card.aliases})

    async def nudge(self, job_id: str) -> bool:
        """An upstream called back about ``job_id``: read its status now (a hint only;
        see engine/nudge.py). False when the job is not waiting on its upstream."""
        if not looks_like("video", job_id):
            return False
        return await request_nudge(self.ctx, job_id)

    async def delete(self, principal: Principal, job_id: str) -> None:
        """Delete a video; a job still running is cancelled, upstream too."""
        check_writer(principal.role)
        _check_id(job_id)
        async with self.ctx.db.begin() as conn:
            job = await self._owned(conn, principal, job_id, for_update=True)
            # now() is the transaction's start: one time for every column written.
            now = db_now()
            values: dict[str, Any] = {"deleted_at": now}
            if not job.is_terminal:
                # Cancelled: cost 0, its reservation released (db/jobs.py ``transition``).
                values.update(
                    to=JobState.CANCELLED,
                    error_code="cancelled",
                    error_message="cancelled by the user",
                    completed_at=now,
                )
                if job.upstream_id is not None:
                    await steps.enqueue(
                        self.ctx.app,
                        conn,
                        steps.CANCEL_UPSTREAM,
                        job_id,
                        lock=steps.cancel_lock(job_id),
                    )
            await transition(conn, job_id, from_states=[job.state], **values)
