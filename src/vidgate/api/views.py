"""One job record, two public shapes."""

from __future__ import annotations

import datetime as dt
from typing import Any

from vidgate.api.schemas import ErrorInfo, GenerationObject, GenerationOutput
from vidgate.core.signing import UrlSigner
from vidgate.core.spec import JobSpec
from vidgate.db.repo import JobRecord, OutputRecord

_OPENAI_STATUS = {
    "queued": "queued",
    "submitting": "in_progress",
    "waiting": "in_progress",
    "finalizing": "in_progress",
    "completed": "completed",
    "failed": "failed",
    "cancelled": "failed",
}
_TASK_STATUS = {
    "queued": "queued",
    "submitting": "processing",
    "waiting": "processing",
    "finalizing": "processing",
    "completed": "completed",
    "failed": "failed",
    "cancelled": "failed",
}


def _ts(value: dt.datetime | None) -> int | None:
    return int(value.timestamp()) if value is not None else None


def _error(job: JobRecord) -> ErrorInfo | None:
    if job.state not in ("failed", "cancelled"):
        return None
    return ErrorInfo(code=job.error_code or "failed", message=job.error_message or "the job failed")


def video_json(job: JobRecord) -> dict[str, Any]:
    """``VideoObject(...).model_dump(mode="json")``, built straight from the stored spec.

    The hot read path: no ``JobSpec`` validation and no model per request. The stored
    spec is ``JobSpec.model_dump(mode="json")`` of a validated spec; a unit test keeps
    this dict equal to the model's dump.
    """
    spec = job.spec
    kind = spec["kind"]
    source = spec.get("source")
    seconds = spec["seconds"] + (source["seconds"] if kind == "extend" and source else 0)
    failed = job.state in ("failed", "cancelled")
    return {
        "id": job.id,
        "object": "video",
        "model": job.model,
        "status": _OPENAI_STATUS[job.state],
        "progress": job.progress,
        "created_at": int(job.created_at.timestamp()),
        "completed_at": _ts(job.completed_at),
        # Stored copies do not expire: vidgate owns them.
        "expires_at": None,
        "prompt": spec["prompt"],
        "seconds": str(seconds),
        "size": f"{spec['width']}x{spec['height']}",
        "remixed_from_video_id": job.source_video_id if kind == "remix" else None,
        "error": {
            "code": job.error_code or "failed",
            "message": job.error_message or "the job failed",
        }
        if failed
        else None,
        "kind": kind,
        "resolution": spec["resolution"],
        "aspect_ratio": spec["aspect_ratio"],
        "fps": spec["fps"],
        "n": spec["n"],
        "seed": spec["seed"],
        "metadata": spec["metadata"],
        "estimated_cost": float(job.estimated_cost),
        "cost": float(job.cost) if job.cost is not None else None,
        "currency": "USD",
    }


def generation_object(
    job: JobRecord, outputs: list[OutputRecord], signer: UrlSigner, base_url: str
) -> GenerationObject:
    spec = JobSpec.model_validate(job.spec)
    data: list[GenerationOutput] = []
    if job.state == "completed":
        for out in outputs:
            url, expires = signer.sign(base_url, job.id, "video", out.index)
            thumb, _ = signer.sign(base_url, job.id, "thumbnail", out.index)
            sprites, _ = signer.sign(base_url, job.id, "spritesheet", out.index)
            data.append(
                GenerationOutput(
                    index=out.index,
                    url=url,
                    thumbnail_url=thumb,
                    spritesheet_url=sprites,
                    width=out.width,
                    height=out.height,
                    duration=out.duration,
                    fps=out.fps,
                    size_bytes=out.size_bytes,
                    expires_at=expires,
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
        estimated_cost=float(job.estimated_cost),
        cost=float(job.cost) if job.cost is not None else None,
    )
