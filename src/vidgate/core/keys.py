"""An API key as the gateway sees it once authenticated (the secret stays hashed in
the database; accounts/keys.py makes and checks keys), the project it belongs to, and
the audit log's entries."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Literal

KeyMode = Literal["test", "live"]
# operator: every project, made only from the CLI; admin: its own project's keys,
# budgets, webhook endpoints and usage; member: create and read videos; reader: read.
Role = Literal["operator", "admin", "member", "reader"]
ROLES: tuple[Role, ...] = ("operator", "admin", "member", "reader")


@dataclass(frozen=True, slots=True)
class KeyRecord:
    id: str
    tenant_id: str
    tenant_name: str
    name: str
    prefix: str
    mode: KeyMode
    role: Role
    created_at: dt.datetime
    revoked_at: dt.datetime | None
    # The card ids the key may use; None: every model.
    models: tuple[str, ...] | None = None
    expires_at: dt.datetime | None = None

    @property
    def is_admin(self) -> bool:
        return self.role in ("operator", "admin")


@dataclass(frozen=True, slots=True)
class ProjectRecord:
    """A project (the ``tenants`` table): it owns its keys, videos and spend."""

    id: str
    name: str
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: dt.datetime
    actor: str
    tenant_id: str | None
    action: str
    target: str | None
    detail: dict[str, Any]
    remote_addr: str | None


@dataclass(frozen=True, slots=True)
class Actor:
    """Who makes an admin change, for the audit log: the acting key's id and the
    client's address (the admin API), or ``cli`` (the command line, the host's rights:
    ``db/audit.py``'s ``CLI_ACTOR``)."""

    id: str = "cli"
    remote_addr: str | None = None
