"""What a key may do: its role's rights, the models it may use, when it expires.

Pure rules, shared by the API (through the services and the engine) and the CLI, so
both refuse the same things with the same words.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable

from vidgate.core.catalog import Catalog
from vidgate.core.errors import InvalidParameter, PermissionDenied
from vidgate.core.keys import ROLES, Role

# Roles that may create, remix, extend and delete videos (a reader only reads).
WRITE_ROLES: frozenset[Role] = frozenset({"operator", "admin", "member"})
# The roles the admin API may give a key: operator keys are made only from the CLI,
# by whoever holds the host.
API_ROLES: tuple[Role, ...] = tuple(r for r in ROLES if r != "operator")

# Project names are typed on command lines and shown in tables: one short word.
PROJECT_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
PROJECT_NAME_ALLOWED = "1 to 64 letters, digits, '.', '_' or '-', starting with a letter or a digit"

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^([1-9][0-9]{0,6})([smhdw])$")
# Far enough for any real key, near enough that now() + it never overflows a timestamp.
MAX_EXPIRES_IN = dt.timedelta(days=3660)


def check_project_name(name: str) -> str:
    if re.match(PROJECT_NAME_PATTERN, name) is None or name.endswith("\n"):
        raise InvalidParameter(
            f"project name {name[:64]!r} is not allowed; allowed: {PROJECT_NAME_ALLOWED}",
            param="name",
        )
    return name


def parse_expires_in(text: str, *, param: str = "expires_in") -> dt.timedelta:
    """``30d``, ``12h``, ``90m``, ``3600s``, ``2w``: a whole number and one unit."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise InvalidParameter(
            f"{param} {text[:64]!r} is not a duration; allowed: a whole number followed by"
            " s, m, h, d or w (seconds, minutes, hours, days, weeks), such as 30d",
            param=param,
        )
    delta = dt.timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])
    if delta > MAX_EXPIRES_IN:
        raise InvalidParameter(
            f"{param} {text!r} is too long; allowed: up to {MAX_EXPIRES_IN.days} days",
            param=param,
        )
    return delta


def resolve_models(catalog: Catalog, names: Iterable[str], *, param: str = "models") -> list[str]:
    """The card ids ``names`` mean (an alias stands for its card), in the order given,
    each once; an unknown name is refused with the catalogue's own message."""
    ids: list[str] = []
    for name in names:
        if name not in catalog:
            known = ", ".join(card.id for card in catalog.models()[:10])
            raise InvalidParameter(
                f"{param}: model {name[:64]!r} does not exist; available models include:"
                f" {known} (GET /v1/models lists them all)",
                param=param,
            )
        card_id = catalog.get(name).id
        if card_id not in ids:
            ids.append(card_id)
    if not ids:
        raise InvalidParameter(f"{param} names no model; leave it out for every model", param=param)
    return ids


def check_model(allowed: frozenset[str] | None, card_id: str, requested: str) -> None:
    """Refuse a model the key is not limited to (``allowed`` None: every model)."""
    if allowed is not None and card_id not in allowed:
        shown = ", ".join(sorted(allowed))
        raise PermissionDenied(
            f"this key may not use model {requested!r}; it is limited to: {shown}",
            param="model",
            code="model_not_allowed",
        )


def check_writer(role: Role) -> None:
    """Refuse a reader key on a route that creates or deletes."""
    if role not in WRITE_ROLES:
        raise PermissionDenied(
            f"this key's role is {role}: it may only read; creating, remixing, extending"
            " and deleting videos needs a member, admin or operator key",
            code="read_only_key",
        )


def check_operator(role: Role, what: str) -> None:
    if role != "operator":
        raise PermissionDenied(
            f"{what} needs an operator key; this key's role is {role}", code="operator_required"
        )
