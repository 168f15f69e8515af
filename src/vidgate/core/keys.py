"""An API key as the gateway sees it once authenticated (the secret stays hashed in
the database; accounts/keys.py makes and checks keys)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

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

    @property
    def is_admin(self) -> bool:
        return self.role in ("operator", "admin")
