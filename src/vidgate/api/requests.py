"""What a create route asks the engine for: one ``VideoRequest`` from any of the four
create bodies (a video, a generation, an extension, a remix)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from vidgate.api.schemas import CreateGenerationBody, CreateVideoBody, ExtendBody, RemixBody
from vidgate.core.spec import JobKind, SourceRef, VideoRequest
from vidgate.engine.service import InputImage

CreateBody = CreateVideoBody | CreateGenerationBody | ExtendBody | RemixBody
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
    body: CreateBody,
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
