"""Request bodies for hosts whose every model defines its own input schema (fal
endpoints, Replicate models): the same few inputs under each model's names.

What a model accepts is the catalogue's capability data, checked before a body is
built; ``InputNames`` only says where each accepted input goes. A spec reaching
``body`` carries a seed, a negative prompt or a last frame only when the model takes
one, so nothing here refuses anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vidgate.core.spec import JobSpec


@dataclass(frozen=True)
class InputNames:
    """One model's names for the common inputs; None: the model has no such input."""

    duration: str | None = "duration"
    # None: seconds as an integer; a string: seconds as a string with this suffix
    # ("" gives "5", "s" gives "8s").
    duration_suffix: str | None = None
    aspect_ratio: str | None = "aspect_ratio"
    # False: an image-to-video request takes its frame from the image, so the aspect
    # ratio is sent with text-to-video only.
    aspect_with_image: bool = True
    resolution: str | None = None
    resolutions: Mapping[str, str] = field(default_factory=dict)  # ours -> the model's
    image: str | None = "image"
    last_frame: str | None = None  # beside ``image``
    seed: str | None = "seed"
    negative_prompt: str | None = "negative_prompt"

    def body(
        self,
        spec: JobSpec,
        image: str | None,
        extra: Mapping[str, Any] | None = None,
        last_frame: str | None = None,
    ) -> dict[str, Any]:
        """``extra`` (the deployment's fixed inputs) under the mapped inputs, which win;
        ``image``/``last_frame`` are already encoded (``data:`` URIs)."""
        body: dict[str, Any] = {**(extra or {}), "prompt": spec.prompt}
        if self.duration:
            suffix = self.duration_suffix
            body[self.duration] = spec.seconds if suffix is None else f"{spec.seconds}{suffix}"
        if self.aspect_ratio and (image is None or self.aspect_with_image):
            body[self.aspect_ratio] = spec.aspect_ratio
        if self.resolution and spec.resolution in self.resolutions:
            body[self.resolution] = self.resolutions[spec.resolution]
        if image is not None and self.image:
            body[self.image] = image
            if last_frame is not None and self.last_frame:
                body[self.last_frame] = last_frame
        if spec.seed is not None and self.seed:
            body[self.seed] = spec.seed
        if spec.negative_prompt is not None and self.negative_prompt:
            body[self.negative_prompt] = spec.negative_prompt
        return body
