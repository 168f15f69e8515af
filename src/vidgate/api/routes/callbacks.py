"""``POST /v1/callbacks/{job_id}?signature=``: where upstream providers report that a
job's task changed state (the URL comes from ``ProviderDeps.callback_url``).

A callback is only a hint. Its body is neither trusted nor kept: a valid signature (it
covers the job id; core/signing.py) makes vidgate read the job's upstream status now
instead of at the next scheduled poll (engine/nudge.py), and that status read decides
what happened. So no provider-specific signature scheme is checked, and a forged
callback can cause at most one extra status read.

MiniMax validates a callback URL before using it: it POSTs ``{"challenge": X}`` and
expects ``{"challenge": X}`` back within 3 s.
"""

from __future__ import annotations

import json
from typing import Any

import structlog
from fastapi import APIRouter, Request
from starlette.responses import JSONResponse

from vidgate.api.deps import State
from vidgate.api.responses import FastJSONResponse
from vidgate.core.errors import NotFound

router = APIRouter(prefix="/v1/callbacks", tags=["callbacks"])
log = structlog.get_logger("vidgate.api")

_NO_CHALLENGE = object()


def _challenge(body: bytes) -> Any:
    """The value of a ``{"challenge": X}`` body, else ``_NO_CHALLENGE``."""
    if not body.lstrip().startswith(b"{"):
        return _NO_CHALLENGE
    try:
        parsed = json.loads(body)
    except ValueError:
        return _NO_CHALLENGE
    if isinstance(parsed, dict) and "challenge" in parsed:
        return parsed["challenge"]
    return _NO_CHALLENGE


@router.post("/{job_id}")
async def upstream_callback(
    job_id: str, request: Request, state: State, signature: str = ""
) -> JSONResponse:
    # The signature never reaches a log line (the access log leaves out the query too).
    if not state.media.verify_callback(job_id, signature):
        raise NotFound("no such callback", code="not_found")
    # The body is capped by EdgeMiddleware; beyond a challenge it is ignored.
    challenge = _challenge(await request.body())
    if challenge is not _NO_CHALLENGE:
        log.info("callback.challenge", job_id=job_id)
        # The stdlib encoder: the value is echoed whatever JSON it is.
        return JSONResponse({"challenge": challenge})
    nudged = await state.jobs.nudge(job_id)
    log.info("callback.received", job_id=job_id, nudged=nudged)
    return FastJSONResponse({"ok": True})
