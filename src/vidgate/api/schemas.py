"""Request bodies and response objects of both API shapes.

Both shapes are views of the same job record (``views.py`` builds them).

Every request field is checked here, whatever the body's encoding (JSON, multipart or
urlencoded all become the same dict first): strings through the annotated types
``Text`` (one line) and ``Prompt`` (may hold tab and newlines), which refuse control
characters and lone surrogates (core/text.py), and ``seed`` through ``Seed`` (0..2^32-1).
Their failures are pydantic errors of type ``invalid_parameter``; ``parameter_error``
turns one into the ``InvalidParameter`` the client sees.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from vidgate.core.budgets import DEFAULT_PERIOD, MAX_USD, USD_PLACES
from vidgate.core.errors import InvalidParameter
from vidgate.core.spec import MAX_SEED, SEED_ALLOWED
from vidgate.core.text import allowed, forbidden_character

# The pydantic error type of the checks below; ``parameter_error`` recognises it.
PARAMETER_ERROR = "invalid_parameter"


def _text_rule(
    *, multiline: bool, what: str | None = None, param: str | None = None
) -> AfterValidator:
    """An ``AfterValidator`` for one kind of text field. ``what`` names the value in the
    message ("metadata key") and ``param`` overrides the parameter taken from the
    error's location (a dict key is data, not a parameter name)."""

    def check(value: str) -> str:
        reason = forbidden_character(value, multiline=multiline)
        if reason is not None:
            raise PydanticCustomError(
                PARAMETER_ERROR,
                "{reason}; allowed: {allowed}",
                {
                    "reason": reason,
                    "allowed": allowed(multiline=multiline),
                    "what": what,
                    "param": param,
                },
            )
        return value

    return AfterValidator(check)


def _seed(value: Any, handler: ValidatorFunctionWrapHandler) -> int:
    # bool is an int to pydantic too; a seed of ``true`` is a mistake, not 1.
    if not isinstance(value, bool):
        try:
            seed: int = handler(value)
            return seed
        except ValidationError:
            pass
    if isinstance(value, int) and value.bit_length() > 128:
        shown = "of more than 128 bits"  # str() of thousands of digits raises
    else:
        shown = repr(value) if isinstance(value, str) else str(value)
    raise PydanticCustomError(
        PARAMETER_ERROR,
        "{shown} is not a whole number in range; allowed: {allowed}",
        {"shown": shown if len(shown) <= 40 else shown[:40] + "...", "allowed": SEED_ALLOWED},
    )


Text = Annotated[str, _text_rule(multiline=False)]
"""A one-line string: no control characters, no lone surrogates."""
Prompt = Annotated[str, _text_rule(multiline=True)]
"""Free text: as ``Text``, but tab, newline and carriage return are kept."""
Seed = Annotated[int, Field(ge=0, le=MAX_SEED), WrapValidator(_seed)]
"""An unsigned 32-bit integer, from a JSON number or a form's numeric string."""
Metadata = dict[
    Annotated[str, _text_rule(multiline=False, what="metadata key", param="metadata")],
    Annotated[str, _text_rule(multiline=False, what="a metadata value", param="metadata")],
]


def parameter_error(errors: Sequence[ErrorDetails]) -> InvalidParameter | None:
    """The first failure of the checks above as the error a client sees, if any failed.

    Looks past other errors: a value that fails one branch of a union (an image as
    ``{"image_url": ...}`` or a plain string) is also reported for the other branch.
    """
    for error in errors:
        if error["type"] != PARAMETER_ERROR:
            continue
        ctx = error.get("ctx") or {}
        param = ctx.get("param") or _param(error["loc"])
        subject = ctx.get("what") or param
        return InvalidParameter(f"{subject} {error['msg']}", param=param)
    return None


def _param(loc: tuple[int | str, ...]) -> str:
    """``video.id`` from ``("video", "id")``; union branches (``ImageUrlReference``,
    ``function-after[...]``) and list positions are not part of a parameter's name."""
    names: list[str] = []
    for part in loc:
        if isinstance(part, int):
            break
        if part.isidentifier() and not part[0].isupper():
            names.append(part)
    return ".".join(names)


class _Body(BaseModel):
    # An unknown field is a 400, as in the OpenAI API: a typo never goes unnoticed.
    model_config = ConfigDict(extra="forbid")


class ImageUrlReference(_Body):
    image_url: Text | None = None
    file_id: Text | None = None


class CreateVideoBody(_Body):
    """``POST /v1/videos``: the OpenAI fields plus vidgate's extras (via ``extra_body``)."""

    prompt: Prompt
    model: Text | None = None
    seconds: bool | int | float | Text | None = None
    size: Text | None = None
    input_reference: ImageUrlReference | Text | None = None
    # vidgate extensions: a last frame, and reference images (https or data URLs).
    last_frame: ImageUrlReference | Text | None = None
    reference_images: list[ImageUrlReference | Text] | None = None
    aspect_ratio: Text | None = None
    resolution: Text | None = None
    fps: bool | int | Text | None = None
    n: bool | int | Text | None = None
    seed: Seed | None = None
    negative_prompt: Prompt | None = None
    metadata: Metadata | None = None
    webhook_url: Text | None = None


class RemixBody(_Body):
    prompt: Prompt
    metadata: Metadata | None = None
    webhook_url: Text | None = None


class VideoReference(_Body):
    id: Text


class ExtendBody(_Body):
    prompt: Prompt
    video: VideoReference
    seconds: bool | int | float | Text | None = None
    model: Text | None = None
    metadata: Metadata | None = None
    webhook_url: Text | None = None


class CreateGenerationBody(_Body):
    """``POST /v1/videos/generations``: the multi-model routers' task shape."""

    model: Text
    prompt: Prompt
    duration: bool | int | float | Text | None = None
    resolution: Text | None = None
    aspect_ratio: Text | None = None
    size: Text | None = None
    n: bool | int | Text | None = None
    image: Text | None = None
    last_frame: Text | None = None
    reference_images: list[Text] | None = None
    fps: bool | int | Text | None = None
    seed: Seed | None = None
    negative_prompt: Prompt | None = None
    metadata: Metadata | None = None
    webhook_url: Text | None = None


class ErrorInfo(BaseModel):
    code: str
    message: str


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorResponse(BaseModel):
    """Every error answer: the OpenAI error shape."""

    error: ErrorDetail


class HealthStatus(BaseModel):
    status: Literal["ok", "unavailable"]


class VideoObject(BaseModel):
    """The OpenAI ``Video`` object, with vidgate's extra fields after ``error``."""

    id: str
    object: Literal["video"] = "video"
    model: str
    status: Literal["queued", "in_progress", "completed", "failed"]
    progress: int
    created_at: int
    completed_at: int | None
    expires_at: int | None
    prompt: str
    seconds: str
    size: str
    remixed_from_video_id: str | None
    error: ErrorInfo | None
    # vidgate extensions
    kind: str
    resolution: str
    aspect_ratio: str
    fps: int
    n: int
    seed: int | None
    metadata: dict[str, str]
    # null: the model has no list price.
    estimated_cost: float | None
    cost: float | None
    currency: Literal["USD"] = "USD"
    # The mode of the key that created it: test (sandbox) or live.
    mode: Literal["test", "live"]


class VideoDeleted(BaseModel):
    id: str
    object: Literal["video.deleted"] = "video.deleted"
    deleted: bool = True


class GenerationOutput(BaseModel):
    index: int
    url: str
    thumbnail_url: str
    spritesheet_url: str
    content_type: Literal["video/mp4"] = "video/mp4"
    width: int
    height: int
    duration: float
    fps: float
    size_bytes: int
    expires_at: int


class GenerationObject(BaseModel):
    id: str
    object: Literal["video.generation"] = "video.generation"
    model: str
    status: Literal["queued", "processing", "completed", "failed"]
    progress: int
    created_at: int
    completed_at: int | None
    prompt: str
    duration: int
    resolution: str
    aspect_ratio: str
    size: str
    fps: int
    n: int
    seed: int | None
    metadata: dict[str, str]
    webhook_url: str | None
    error: ErrorInfo | None
    data: list[GenerationOutput]
    estimated_cost: float | None
    cost: float | None
    currency: Literal["USD"] = "USD"
    # When the project's retention deletes this video's media (null: kept forever);
    # ``data`` is empty from then on.
    expires_at: int | None = None


class ModelObject(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str
    # An alias: the card it names (its limits and prices are that card's).
    alias_of: str | None = None
    # A card: the other names that reach it.
    aliases: list[str] = []
    description: str
    capabilities: dict[str, Any]
    # null: no list price; jobs' estimated_cost is null.
    pricing: dict[str, Any] | None
    deployments: list[dict[str, Any]]


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelObject]


# --- budgets (issue 13): /v1/admin/budgets.


class SetBudgetBody(BaseModel):
    """The budget of a project, or of one of its keys, for one period (set again to
    change it: one budget per scope and period)."""

    model_config = ConfigDict(extra="forbid")

    usd: Annotated[Decimal, Field(ge=0, le=MAX_USD, decimal_places=USD_PLACES)]
    period: Literal["day", "month", "total"] = DEFAULT_PERIOD
    # A key of the project: the key's own budget; absent: the project's.
    key_id: Text | None = None
    # An operator's choice of project (its id); others act on their own.
    project: Text | None = None


class BudgetObject(BaseModel):
    id: str
    object: Literal["budget"] = "budget"
    project: str
    project_name: str
    key_id: str | None
    period: Literal["day", "month", "total"]
    usd: float
    # What counts against it in the current period: reserved for running jobs, charged
    # for settled ones (USD).
    spent: float
    remaining: float
    # The current period, unix seconds (UTC calendar day or month); null for total.
    period_start: int | None
    period_end: int | None
    currency: Literal["USD"] = "USD"
    created_at: int
    updated_at: int


class BudgetList(BaseModel):
    object: Literal["list"] = "list"
    data: list[BudgetObject]


class BudgetDeleted(BaseModel):
    id: str
    object: Literal["budget.deleted"] = "budget.deleted"
    deleted: bool
