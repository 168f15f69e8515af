"""Request bodies and response objects of the admin API's projects, keys and audit log,
and the records of ``core/keys.py`` shown as them.

Times are Unix seconds, as on videos. A key's secret appears once, in the answer to
its creation (``CreatedKeyObject``), and nowhere else.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from vidgate.api.schemas import Text
from vidgate.core.access import PROJECT_NAME_PATTERN
from vidgate.core.keys import AuditEntry, KeyRecord, ProjectRecord

ProjectName = Annotated[str, Field(min_length=1, max_length=64, pattern=PROJECT_NAME_PATTERN)]
KeyName = Annotated[Text, Field(min_length=1, max_length=200)]


class _Body(BaseModel):
    # An unknown field is a 400, as on every other route.
    model_config = ConfigDict(extra="forbid")


class CreateProjectBody(_Body):
    name: ProjectName


class CreateKeyBody(_Body):
    name: KeyName
    mode: Literal["test", "live"] = "test"
    # operator is named so that asking for it gets its own answer (403
    # operator_key_cli_only), not a generic validation error.
    role: Literal["operator", "admin", "member", "reader"] = "member"
    # Model ids or aliases; null or absent: every model.
    models: (
        Annotated[
            list[Annotated[Text, Field(min_length=1, max_length=200)]],
            Field(min_length=1, max_length=100),
        ]
        | None
    ) = None
    # A whole number and a unit (s, m, h, d, w), e.g. "30d"; absent: never expires.
    expires_in: Annotated[Text, Field(max_length=16)] | None = None
    # A project id; only an operator key may name another project than its own.
    project: Annotated[Text, Field(max_length=64)] | None = None


def _unix(value: dt.datetime | None) -> int | None:
    return int(value.timestamp()) if value is not None else None


class ProjectObject(BaseModel):
    id: str
    object: Literal["project"] = "project"
    name: str
    created_at: int

    @classmethod
    def of(cls, record: ProjectRecord) -> ProjectObject:
        return cls(id=record.id, name=record.name, created_at=int(record.created_at.timestamp()))


class ProjectList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ProjectObject]
    first_id: str | None
    last_id: str | None
    has_more: bool


class KeyObject(BaseModel):
    id: str
    object: Literal["key"] = "key"
    name: str
    project_id: str
    project_name: str
    mode: Literal["test", "live"]
    role: Literal["operator", "admin", "member", "reader"]
    # The card ids the key may use; null: every model.
    models: list[str] | None
    # The secret's first characters, to recognise it; never the secret.
    prefix: str
    created_at: int
    expires_at: int | None
    revoked_at: int | None

    @classmethod
    def fields_of(cls, record: KeyRecord) -> dict[str, Any]:
        return {
            "id": record.id,
            "name": record.name,
            "project_id": record.tenant_id,
            "project_name": record.tenant_name,
            "mode": record.mode,
            "role": record.role,
            "models": list(record.models) if record.models is not None else None,
            "prefix": record.prefix,
            "created_at": int(record.created_at.timestamp()),
            "expires_at": _unix(record.expires_at),
            "revoked_at": _unix(record.revoked_at),
        }

    @classmethod
    def of(cls, record: KeyRecord) -> KeyObject:
        return cls(**cls.fields_of(record))


class CreatedKeyObject(KeyObject):
    # Shown once: only its hash is kept.
    secret: str


class KeyList(BaseModel):
    object: Literal["list"] = "list"
    data: list[KeyObject]
    first_id: str | None
    last_id: str | None
    has_more: bool


class AuditEntryObject(BaseModel):
    id: int
    object: Literal["audit_log.entry"] = "audit_log.entry"
    at: int
    # The acting key's id, or "cli" for the command line.
    actor: str
    project_id: str | None
    # resource.verb: projects.create, keys.create, keys.revoke, ...
    action: str
    target: str | None
    detail: dict[str, Any]
    remote_addr: str | None

    @classmethod
    def of(cls, entry: AuditEntry) -> AuditEntryObject:
        return cls(
            id=entry.id,
            at=int(entry.at.timestamp()),
            actor=entry.actor,
            project_id=entry.tenant_id,
            action=entry.action,
            target=entry.target,
            detail=entry.detail,
            remote_addr=entry.remote_addr,
        )


class AuditLog(BaseModel):
    object: Literal["list"] = "list"
    data: list[AuditEntryObject]
    first_id: int | None
    last_id: int | None
    has_more: bool
