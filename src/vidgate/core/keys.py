"""An API key as the gateway sees it once authenticated (the secret stays hashed in
the database; accounts/keys.py makes and checks keys)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

KeyMode = Literal["test", "live"]


@dataclass(frozen=True, slots=True)
class KeyRecord:
    id: str
    tenant_id: str
    tenant_name: str
    name: str
    prefix: str
    mode: KeyMode
    is_admin: bool
    created_at: dt.datetime
    revoked_at: dt.datetime | None
