"""One job record, two public shapes."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from vidgate.api.schemas import ErrorInfo, GenerationObject, GenerationOutput
from vidgate.core.jobs import JobRecord, JobState, OutputRecord
from vidgate.core.video_details import VideoDetails, history, timings
from vidgate.services.media import MediaService

_OPENAI_STATUS = {
    JobState.QUEUED: "queued",
    JobState.SUBMITTING: "in_progress",
    JobState.WAITING: "in_progress",
    JobState.FINALIZING: "in_progress",
    JobState.COMPLETED: "completed",
    JobState.FAILED: "failed",
    JobState.CANCELLED: "failed",
}
_TASK_STATUS = {
    JobState.QUEUED: "queued",
    JobState.SUBMITTING: "processing",
    JobState.WAITING: "processing",
    JobState.FINALIZING: "processing",
    JobState.COMPLETED: "completed",
    JobState.FAILED: "failed",
    JobState.CANCELLED: "failed",
}
# Both failed and cancelled jobs show their error.
_ENDED_BADLY = frozenset({JobState.FAILED, JobState.CANCELLED})


def _usd(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def _ts(value: dt.datetime | None) -> int | None:
    return int(value.timestamp()) if value is not None else None


def _error(job: JobRecord) -> ErrorInfo | None:
    if job.state not in _ENDED_BADLY:
        return None
    return ErrorInfo(code=job.error_code or "failed", message=job.error_message or "the job failed")


def video_json(job: JobRecord) -> dict[str, Any]:
    """``VideoObject(...).model_dump(mode="json")``, built straight from the job's spec.

    The hot read path: no ``VideoObject`` model per request; a unit test keeps this
    dict equal to the model's dump.
    """
    spec = job.spec
    kind = spec.kind
    source = spec.source
    seconds = spec.seconds + (source.seconds if kind == "extend" and source else 0)
    failed = job.state in _ENDED_BADLY
    return {
        "id": job.id,
        "object": "video",
        "model": job.model,
        "status": _OPENAI_STATUS[job.state],
        "progress": job.progress,
        "created_at": int(job.created_at.timestamp()),
        "completed_at": _ts(job.completed_at),
        # When the project's retention deletes the media; None: kept forever.
        "expires_at": _ts(job.expires_at),
        "prompt": spec.prompt,
        "seconds": str(seconds),
        "size": spec.size,
        "remixed_from_video_id": job.source_video_id if kind == "remix" else None,
        "error": {
            "code": job.error_code or "failed",
            "message": job.error_message or "the job failed",
        }
        if failed
        else None,
        "kind": kind,
        "resolution": spec.resolution,
        "aspect_ratio": spec.aspect_ratio,
        "fps": spec.fps,
        "n": spec.n,
        "seed": spec.seed,
        "metadata": spec.metadata,
        "estimated_cost": _usd(job.estimated_cost),
        "cost": float(job.cost) if job.cost is not None else None,
        "currency": "USD",
        "mode": job.mode,
    }


def video_links(
    job: JobRecord, output: OutputRecord | None, media: MediaService, base_url: str
) -> dict[str, Any] | None:
    """``VideoLinks`` of output 0 as JSON: the signed links the task shape's outputs
    carry, and the spritesheet's grid; None until the job completed with an output,
    and once its media expired or was released (``output`` None)."""
    if job.state != JobState.COMPLETED or output is None or _expired(job):
        return None
    links = media.output_links(base_url, job.id, output.index)
    grid = media.spritesheet_grid(output)
    return {
        "video": links.video,
        "thumbnail": links.thumbnail,
        "spritesheet": links.spritesheet,
        "expires_at": links.expires_at,
        "spritesheet_grid": {
            "columns": grid.columns,
            "rows": grid.rows,
            "frames": grid.frames,
            "tile_width": grid.tile_width,
            "tile_height": grid.tile_height,
        },
    }


def generation_object(
    job: JobRecord, outputs: list[OutputRecord], media: MediaService, base_url: str
) -> GenerationObject:
    spec = job.spec
    data: list[GenerationOutput] = []
    if job.state == JobState.COMPLETED and not _expired(job):
        for out in outputs:
            links = media.output_links(base_url, job.id, out.index)
            data.append(
                GenerationOutput(
                    index=out.index,
                    url=links.video,
                    thumbnail_url=links.thumbnail,
                    spritesheet_url=links.spritesheet,
                    width=out.width,
                    height=out.height,
                    duration=out.duration,
                    fps=out.fps,
                    size_bytes=out.size_bytes,
                    expires_at=links.expires_at,
                )
            )
    return GenerationObject(
        id=job.id,
        model=job.model,
        status=_TASK_STATUS[job.state],
        progress=job.progress,
        created_at=int(job.created_at.timestamp()),
        completed_at=_ts(job.completed_at),
        prompt=spec.prompt,
        duration=spec.seconds
        + (spec.source.seconds if spec.kind == "extend" and spec.source else 0),
        resolution=spec.resolution,
        aspect_ratio=spec.aspect_ratio,
        size=spec.size,
        fps=spec.fps,
        n=spec.n,
        seed=spec.seed,
        metadata=spec.metadata,
        webhook_url=job.webhook_url,
        error=_error(job),
        data=data,
        estimated_cost=_usd(job.estimated_cost),
        cost=float(job.cost) if job.cost is not None else None,
        expires_at=_ts(job.expires_at),
    )


def _expired(job: JobRecord) -> bool:
    """Past its project's retention: no links (its content answers video_expired)."""
    return job.expires_at is not None and job.expires_at <= dt.datetime.now(dt.UTC)


def _request_json(job: JobRecord) -> dict[str, Any]:
    spec = job.spec
    images = [("input_reference", spec.image), ("last_frame", spec.last_frame)]
    images += [("reference_image", ref) for ref in spec.reference_images]
    return {
        "model": job.model,
        "kind": spec.kind,
        "prompt": spec.prompt,
        "negative_prompt": spec.negative_prompt,
        "seconds": spec.seconds,
        "size": spec.size,
        "resolution": spec.resolution,
        "aspect_ratio": spec.aspect_ratio,
        "fps": spec.fps,
        "n": spec.n,
        "seed": spec.seed,
        "metadata": spec.metadata,
        "source_video_id": job.source_video_id,
        "images": [
            {
                "role": role,
                "sha256": ref.sha256,
                "content_type": ref.content_type,
                "width": ref.width,
                "height": ref.height,
            }
            for role, ref in images
            if ref is not None
        ],
        "webhook_url": job.webhook_url,
    }


def details_json(found: VideoDetails, media: MediaService, base_url: str) -> dict[str, Any]:
    """``VideoDetailsObject`` as JSON: the links of every output (none until completed,
    nor once the media expired or was released)."""
    job = found.job
    outputs = found.outputs if not found.media_released else []
    first = outputs[0] if outputs else None
    shown: list[dict[str, Any]] = []
    if job.state == JobState.COMPLETED and not _expired(job):
        for out in outputs:
            links = media.output_links(base_url, job.id, out.index)
            shown.append(
                {
                    "index": out.index,
                    "width": out.width,
                    "height": out.height,
                    "duration": out.duration,
                    "fps": out.fps,
                    "size_bytes": out.size_bytes,
                    "video": links.video,
                    "thumbnail": links.thumbnail,
                    "spritesheet": links.spritesheet,
                }
            )
    spent = timings(job)
    return {
        "object": "video.details",
        "video": video_json(job),
        "request": _request_json(job),
        "deployment": {
            "provider": job.provider,
            "upstream_model": job.upstream_model,
            "upstream_id": job.upstream_id,
            "tried": list(job.tried_providers),
        },
        "history": [
            {"status": step.status, "at": int(step.at.timestamp())} for step in history(job)
        ],
        "timings": {
            "queued_s": spent.queued_s,
            "generating_s": spent.generating_s,
            "total_s": spent.total_s,
        },
        "cost": float(job.cost) if job.cost is not None else None,
        "estimated_cost": _usd(job.estimated_cost),
        "currency": "USD",
        "links": video_links(job, first, media, base_url),
        "outputs": shown,
        "webhook_deliveries": [
            {
                "id": d.id,
                "event_type": d.event_type,
                "url": d.url,
                "status": d.status,
                "attempts": d.attempts,
                "last_status_code": d.last_status_code,
                "created_at": int(d.created_at.timestamp()),
            }
            for d in found.deliveries
        ],
    }
