"""What a create route asks the engine for: one ``VideoRequest`` from any of the four
create bodies (a video, a generation, an extension, a remix), and the job it makes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from vidgate.api.billing_schemas import EstimateBody
from vidgate.api.deps import CallerContext
from vidgate.api.schemas import CreateGenerationBody, CreateVideoBody, ExtendBody, RemixBody
from vidgate.core.jobs import JobRecord
from vidgate.core.limits import Verdict
from vidgate.core.spec import JobKind, SourceRef, VideoRequest
from vidgate.engine.service import InputImage

CreateBody = CreateVideoBody | CreateGenerationBody | ExtendBody | RemixBody
# An estimate's body holds the fields of both create shapes.
RequestBody = CreateBody | EstimateBody
Seconds = bool | int | float | str | None

# The generation options a body may carry, named alike in the bodies and in
# ``VideoRequest``. The create bodies carry all of them; an extension or a remix none
# (its source decides), so there they keep ``VideoRequest``'s defaults.
_OPTIONS = {"size", "resolution", "aspect_ratio", "fps", "n", "seed", "negative_prompt"}


@dataclass(frozen=True, slots=True)
class RequestImages:
    """A request's images, inspected and not stored yet (``JobService.create`` writes
    them once the whole request is valid)."""

    image: InputImage | None = None
    last_frame: InputImage | None = None
    references: Sequence[InputImage] = ()

    def all(self) -> list[InputImage]:
        return [i for i in (self.image, self.last_frame, *self.references) if i is not None]


NO_IMAGES = RequestImages()


def video_request(
    body: RequestBody,
    *,
    model: str,
    seconds: Seconds = None,
    images: RequestImages = NO_IMAGES,
    kind: JobKind = "generate",
    source: SourceRef | None = None,
) -> VideoRequest:
    """The request, from the body and what the route decided: the model (a default, or
    the source's), the duration (``seconds`` or ``duration``, by shape), the kind."""
    return VideoRequest(
        model=model,
        prompt=body.prompt,
        kind=kind,
        seconds=seconds,
        metadata=body.metadata,
        image=images.image.ref if images.image else None,
        last_frame=images.last_frame.ref if images.last_frame else None,
        reference_images=[r.ref for r in images.references],
        source=source,
        **body.model_dump(include=_OPTIONS),
    )


async def create_job(
    caller: CallerContext,
    body: CreateBody,
    idempotency_key: str | None,
    *,
    model: str,
    seconds: Seconds = None,
    images: RequestImages = NO_IMAGES,
    kind: JobKind = "generate",
    source: SourceRef | None = None,
) -> tuple[JobRecord, dict[str, str]]:
    """The caller's job for ``body`` (``video_request``'s arguments), created with the
    images it refers to, or the one an earlier request with ``idempotency_key`` made;
    and the response headers of the key's rate limits (none when it has none)."""
    req = video_request(body, model=model, seconds=seconds, images=images, kind=kind, source=source)
    verdicts: list[Verdict] = []
    job = await caller.jobs.create(
        caller.principal,
        req,
        images=images.all(),
        webhook_url=body.webhook_url,
        idempotency_key=idempotency_key,
        on_limits=verdicts.append,
    )
    return job, verdicts[0].headers() if verdicts else {}
