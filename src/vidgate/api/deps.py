"""Request dependencies, as ``Annotated`` aliases so routes read like declarations.

``State`` for routes anyone may call (the link or signature is the permission),
``Caller`` for routes that need an API key, ``Writer`` for those that create or delete
(no reader key), ``Admin`` for the admin API (operator or admin keys). Each takes only
the request and is ``async def``: FastAPI runs a plain ``def`` dependency in the thread pool (a
thread hop per request), and every further dependency, nested or declared header costs
it another resolution and validation pass per request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from vidgate.api.auth import KeyAuthenticator
from vidgate.config import Settings
from vidgate.core.access import check_writer
from vidgate.core.errors import PermissionDenied
from vidgate.core.keys import Actor
from vidgate.engine.service import JobService, Principal
from vidgate.services import Services
from vidgate.services.accounts import AccountService
from vidgate.services.media import MediaService


class ApiState:
    """What the routes share, held on ``app.state.api`` for the app's lifetime: the
    services (vidgate/services/), the settings, and the key cache. Plain attributes,
    read on every request."""

    def __init__(self, services: Services, settings: Settings) -> None:
        self.jobs = services.jobs
        self.models = services.models
        self.media = services.media
        self.keys = services.keys
        self.health = services.health
        self.usage = services.usage
        self.prices = services.prices
        self.limits = services.limits
        self.retention = services.retention
        self.webhook_endpoints = services.webhook_endpoints
        self.budgets = services.budgets
        self.accounts: AccountService = services.accounts
        self.metrics = services.metrics
        self.details = services.details
        self.settings = settings
        self.auth = KeyAuthenticator(services.keys)


def _state(request: Request) -> ApiState:
    state: ApiState = request.app.state.api
    return state


async def get_state(request: Request) -> ApiState:
    return _state(request)


State = Annotated[ApiState, Depends(get_state)]


@dataclass(frozen=True, slots=True)
class CallerContext:
    """An authenticated request: who asks, and what answering needs."""

    principal: Principal
    state: ApiState

    @property
    def jobs(self) -> JobService:
        return self.state.jobs

    @property
    def settings(self) -> Settings:
        return self.state.settings

    @property
    def media(self) -> MediaService:
        return self.state.media


async def get_caller(request: Request) -> CallerContext:
    """The caller, from ``Authorization: Bearer <key>``."""
    state = _state(request)
    principal = await state.auth.authenticate(request.headers.get("authorization"))
    return CallerContext(principal, state)


Caller = Annotated[CallerContext, Depends(get_caller)]


async def get_writer(request: Request) -> CallerContext:
    """A key that may create and delete videos: any role but reader."""
    caller = await get_caller(request)
    check_writer(caller.principal.role)
    return caller


Writer = Annotated[CallerContext, Depends(get_writer)]


async def get_admin(request: Request) -> CallerContext:
    """An operator key, or an admin key (of its own project only: each admin route
    scopes what it touches to ``principal.tenant_id`` unless the role is operator)."""
    caller = await get_caller(request)
    if not caller.principal.is_admin:
        raise PermissionDenied(
            f"this route needs an operator or admin key; this key's role is"
            f" {caller.principal.role}",
            code="admin_required",
        )
    return caller


Admin = Annotated[CallerContext, Depends(get_admin)]


def client_address(request: Request) -> str | None:
    """Where the request came from, for the audit log (None when the server does not
    know, as under an in-process test client)."""
    return request.client.host if request.client else None


def actor(request: Request, caller: CallerContext) -> Actor:
    """The acting key and where it called from, for the audit log."""
    return Actor(caller.principal.key_id, client_address(request))


def public_base_url(request: Request, settings: Settings) -> str:
    return settings.public_base_url or str(request.base_url)
