"""``create_app`` builds an app over the services it is given and starts nothing: the
process that serves owns the runtime and the worker (cli.py ``serve``), so a test can
build the app in-process and talk to it over an ASGI transport."""

import asyncio
from pathlib import Path
from typing import Any, cast

import httpx

from vidgate.api.app import create_app
from vidgate.config import Settings
from vidgate.services import Services


class _Health:
    """``HealthService`` with a database that always answers."""

    available = True

    def report(self, exc: BaseException) -> bool:
        return False


def _services() -> Services:
    # Only health is reached here; the other services must not be touched at all.
    unused: Any = object()
    return Services(  # type: ignore[arg-type]
        jobs=unused,
        models=unused,
        media=unused,
        keys=unused,
        health=_Health(),
        usage=unused,
        prices=unused,
        limits=unused,
        webhook_endpoints=unused,
        budgets=unused,
        accounts=unused,
        retention=unused,
        metrics=unused,
        details=unused,
    )


async def test_the_app_starts_nothing_and_answers_in_process(tmp_path: Path) -> None:
    app = create_app(_services(), Settings(data_dir=tmp_path))
    before = asyncio.all_tasks()
    async with app.router.lifespan_context(app):
        # No worker, no runtime: starting the app adds no task to the loop.
        assert asyncio.all_tasks() == before
        transport = httpx.ASGITransport(app=cast(Any, app))
        async with httpx.AsyncClient(transport=transport, base_url="http://vidgate") as client:
            response = await client.get("/healthz")
            missing_key = await client.get("/v1/videos/video_01")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})
    # The fast lane answers before routing, with the same error as the route.
    assert missing_key.status_code == 401
    assert missing_key.json()["error"]["code"] == "missing_api_key"
