"""Request dependencies, as ``Annotated`` aliases so routes read like declarations."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from vidgate.api.auth import KeyAuthenticator
from vidgate.config import Settings
from vidgate.core.signing import UrlSigner
from vidgate.engine.service import JobService, Principal
from vidgate.runtime import Runtime


class ApiState:
    """What the routes share, held on ``app.state.api`` for the app's lifetime."""

    def __init__(self, runtime: Runtime, signer: UrlSigner) -> None:
        self.runtime = runtime
        self.signer = signer
        self.auth = KeyAuthenticator(runtime.db)


def get_state(request: Request) -> ApiState:
    state: ApiState = request.app.state.api
    return state


State = Annotated[ApiState, Depends(get_state)]


async def get_principal(
    state: State, authorization: Annotated[str | None, Header()] = None
) -> Principal:
    return await state.auth.authenticate(authorization)


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


def get_jobs(state: State) -> JobService:
    return state.runtime.jobs


Jobs = Annotated[JobService, Depends(get_jobs)]


def get_settings(state: State) -> Settings:
    return state.runtime.settings


AppSettings = Annotated[Settings, Depends(get_settings)]


def public_base_url(request: Request, settings: Settings) -> str:
    return settings.public_base_url or str(request.base_url)
