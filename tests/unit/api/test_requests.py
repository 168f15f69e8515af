"""``video_request`` is the one builder of a ``VideoRequest`` for the four create
routes: it must build exactly what each route built field by field before."""

from vidgate.api.requests import RequestImages, video_request
from vidgate.api.schemas import CreateGenerationBody, CreateVideoBody, ExtendBody, RemixBody
from vidgate.core.spec import ImageRef, SourceRef, VideoRequest
from vidgate.engine.service import InputImage

SOURCE = SourceRef(video_id="video_src", sha256="b" * 64, seconds=4, width=1280, height=720, fps=24)
OPTIONS = {
    "size": "1280x720",
    "resolution": "720p",
    "aspect_ratio": "16:9",
    "fps": 24,
    "n": 2,
    "seed": 7,
    "negative_prompt": "blur",
    "metadata": {"k": "v"},
}


def _image(name: str) -> InputImage:
    return InputImage(ImageRef(sha256=name * 64, width=8, height=8, content_type="image/png"), b"")


IMAGES = RequestImages(_image("a"), _image("b"), [_image("c"), _image("d")])


def _expected(model: str, seconds: object) -> VideoRequest:
    return VideoRequest(
        model=model,
        prompt="a cat",
        seconds=seconds,  # type: ignore[arg-type]
        image=IMAGES.image.ref if IMAGES.image else None,
        last_frame=IMAGES.last_frame.ref if IMAGES.last_frame else None,
        reference_images=[r.ref for r in IMAGES.references],
        **OPTIONS,  # type: ignore[arg-type]
    )


def test_both_create_shapes_carry_every_option_and_image() -> None:
    video = CreateVideoBody(prompt="a cat", seconds="8", **OPTIONS)  # type: ignore[arg-type]
    task = CreateGenerationBody(model="m", prompt="a cat", duration=8, **OPTIONS)  # type: ignore[arg-type]
    assert video_request(video, model="sora-2", seconds=video.seconds, images=IMAGES) == (
        _expected("sora-2", "8")
    )
    assert video_request(task, model="m", seconds=task.duration, images=IMAGES) == _expected("m", 8)
    assert IMAGES.all() == [IMAGES.image, IMAGES.last_frame, *IMAGES.references]


def test_extend_and_remix_take_their_source_and_leave_the_options_to_it() -> None:
    extend = ExtendBody(prompt="on", video={"id": "video_src"}, seconds=4, metadata={"k": "v"})  # type: ignore[arg-type]
    remix = RemixBody(prompt="again")
    assert video_request(
        extend, model="m", seconds=extend.seconds, kind="extend", source=SOURCE
    ) == VideoRequest(
        model="m", prompt="on", kind="extend", seconds=4, metadata={"k": "v"}, source=SOURCE
    )
    assert video_request(remix, model="m", kind="remix", source=SOURCE) == VideoRequest(
        model="m", prompt="again", kind="remix", source=SOURCE
    )
