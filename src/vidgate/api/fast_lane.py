"""``GET /v1/videos/{id}`` answered before FastAPI's routing.

Every client that waits for a video polls this route (the ``openai`` SDK once a
second per video), so it is the gateway's hottest request by far. Through FastAPI,
routing, the request object, path-parameter validation and the exception wrappers
cost about half of it (bench B1's profile); the answer itself is one cached key check,
one prepared read and one JSON encode. So the edge answers it directly, with the same
code the FastAPI route runs (``video_status``, which builds the ``StatusResponse``
both send) and the same error bodies, and the route stays for everything else it
means (the OpenAPI schema, ids of another shape).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from vidgate.api.errors import DATABASE_ERRORS, database_error_response, error_response
from vidgate.api.views import video_json
from vidgate.core.errors import VidgateError

if TYPE_CHECKING:
    from vidgate.api.deps import ApiState

_PREFIX = "/v1/videos/"
# Only ids of vidgate's own shape: other segments under /v1/videos/ are routes of their
# own (``generations``, ``extensions``) or belong to FastAPI's 404.
_ID_PREFIX = "video_"
# The route template the edge counts these requests under (the FastAPI route's own).
ROUTE = "/v1/videos/{video_id}"
# Where the fast lane leaves it in the scope (FastAPI's routing leaves its route).
ROUTE_KEY = "vidgate.route"
# What the SDK's poll helper waits between status reads of a running job.
POLL_AFTER_MS = b"1000"


class StatusResponse(Response):
    """The answer to a status read of a video, from the edge and from the route alike:
    the video object as JSON and, while the job runs, when to ask again."""

    def __init__(self, body: bytes, terminal: bool) -> None:
        # Starlette's __init__ would build the same headers through a MutableHeaders.
        self.body = body
        self.status_code = 200
        self.background = None
        self.raw_headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        if not terminal:
            self.raw_headers.append((b"openai-poll-after-ms", POLL_AFTER_MS))


async def video_status(state: ApiState, authorization: str | None, video_id: str) -> StatusResponse:
    """The status read's answer; raises ``VidgateError``."""
    principal = await state.auth.authenticate(authorization)
    job = await state.jobs.get(principal, video_id)
    return StatusResponse(orjson.dumps(video_json(job)), job.is_terminal)


def _video_id(scope: Scope) -> str | None:
    """The id when ``scope`` is exactly ``GET /v1/videos/<video id>`` with no query."""
    if scope["method"] != "GET" or scope["query_string"]:
        return None
    path: str = scope["path"]
    if not path.startswith(_PREFIX):
        return None
    video_id = path[len(_PREFIX) :]
    if not video_id.startswith(_ID_PREFIX) or "/" in video_id:
        return None
    return video_id


async def try_fast_lane(scope: Scope, receive: Receive, send: Send) -> bool:
    """Answer the request if it is a status read of a video; False to pass it on."""
    video_id = _video_id(scope)
    if video_id is None:
        return False
    state: ApiState | None = getattr(scope["app"].state, "api", None)
    if state is None:  # not started yet: FastAPI answers as it would
        return False
    scope[ROUTE_KEY] = ROUTE
    authorization = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            authorization = value.decode("latin-1")
            break
    try:
        response = await video_status(state, authorization, video_id)
    except VidgateError as error:
        await error_response(error)(scope, receive, send)
        return True
    except DATABASE_ERRORS as exc:
        await database_error_response(state.health, exc)(scope, receive, send)
        return True
    # What ``response(scope, receive, send)`` sends, without its coroutine per request.
    await send({"type": "http.response.start", "status": 200, "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body})
    return True
