"""Request and response models of the rate limit routes (api/routes/admin_limits.py)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from vidgate.core.limits import MAX_LIMIT

LimitValue = Annotated[StrictInt, Field(ge=1, le=MAX_LIMIT)] | None


class LimitsBody(BaseModel):
    """A change of limits: each field given is set (null: no limit); a field left out
    stays as it is."""

    model_config = ConfigDict(extra="forbid")

    rpm: LimitValue = Field(
        default=None, description="Creates accepted in any 60 s window; null: no limit."
    )
    max_concurrent: LimitValue = Field(
        default=None,
        description="Jobs in flight (queued, submitting, waiting, finalizing); null: no limit.",
    )


class LimitsObject(BaseModel):
    """A project's limits (``key_id`` null) or a key's."""

    object: Literal["project.limits", "key.limits"]
    project_id: str
    key_id: str | None
    rpm: int | None
    max_concurrent: int | None
