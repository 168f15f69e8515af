"""``GET /v1/videos/{id}`` and ``GET /v1/videos/{id}/content`` answered before FastAPI's
routing.

Every client that waits for a video polls this route (the ``openai`` SDK once a
second per video), so it is the gateway's hottest request by far. Through FastAPI,
routing, the request object, path-parameter validation and the exception wrappers
cost about half of it (bench B1's profile); the answer itself is one cached key check,
one prepared read and one JSON encode. So the edge answers it directly, with the same
code the FastAPI route runs (``video_status``, which builds the ``StatusResponse``
both send) and the same error bodies, and the route stays for everything else it
means (the OpenAPI schema, ids of another shape).

A download of a small stored video went the same way: routing, dependencies and query
validation were a large share of its cost once the file came from memory
(services/small_blobs.py). The edge answers a download whose query it reads exactly as
the route would (each of ``variant``, ``index``, ``expires``, ``signature`` at most
once, known variants, plain digits in range) with the route's own code
(``content.video_content``); anything else goes to the route, whose answers
(validation errors included) are the reference.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

import orjson
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from vidgate.api.content import video_content
from vidgate.api.errors import DATABASE_ERRORS, database_error_response, error_response
from vidgate.api.views import video_json
from vidgate.core.errors import VidgateError
from vidgate.core.jobs import JobRecord, JobState
from vidgate.engine.poll_schedule import FAST_WINDOW_S

if TYPE_CHECKING:
    from vidgate.api.deps import ApiState

_PREFIX = "/v1/videos/"
# Only ids of vidgate's own shape: other segments under /v1/videos/ are routes of their
# own (``generations``, ``extensions``) or belong to FastAPI's 404.
_ID_PREFIX = "video_"
# The route templates the edge counts these requests under (the FastAPI routes' own).
ROUTE = "/v1/videos/{video_id}"
CONTENT_ROUTE = "/v1/videos/{video_id}/content"
# Where the fast lane leaves it in the scope (FastAPI's routing leaves its route).
ROUTE_KEY = "vidgate.route"
# What the SDK's poll helper waits between status reads of a running job.
POLL_AFTER_MS = b"1000"
# A job being stored is complete within a moment: ask again soon.
FINALIZING_POLL_AFTER_MS = 250
# From the expected end of a job's upstream task to its being complete: noticing it,
# downloading and storing the result (bench B7).
FINALIZE_ALLOWANCE_S = 0.3
_SOONEST_MS = 100


def poll_after_ms(job: JobRecord, now: float) -> bytes:
    """When a client should read a running job again: a second (the SDK's own pace),
    or sooner where vidgate expects the job to complete sooner (just after its
    upstream task's expected end, or while its result is being stored), so that a
    client that follows the header sees the video without up to a second's delay."""
    if job.state == JobState.FINALIZING:
        return str(FINALIZING_POLL_AFTER_MS).encode()
    if job.state == JobState.WAITING and job.expected_end_at is not None:
        left = job.expected_end_at.timestamp() + FINALIZE_ALLOWANCE_S - now
        if 0 < left < 1:
            return str(max(_SOONEST_MS, round(1000 * left))).encode()
        if -FAST_WINDOW_S < left <= 0:
            # Just past it, the poller reads the task every quarter second
            # (engine/poll_schedule.py): a client sent here by the hint above, which
            # finds it still running, would otherwise wait a whole second more.
            return str(FINALIZING_POLL_AFTER_MS).encode()
    return POLL_AFTER_MS


class StatusResponse(Response):
    """The answer to a status read of a video, from the edge and from the route alike:
    the video object as JSON and, while the job runs, when to ask again."""

    def __init__(self, body: bytes, poll_after: bytes | None) -> None:
        # Starlette's __init__ would build the same headers through a MutableHeaders.
        self.body = body
        self.status_code = 200
        self.background = None
        self.raw_headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        if poll_after is not None:
            self.raw_headers.append((b"openai-poll-after-ms", poll_after))


async def video_status(state: ApiState, authorization: str | None, video_id: str) -> StatusResponse:
    """The status read's answer; raises ``VidgateError``."""
    principal = await state.auth.authenticate(authorization)
    job = await state.jobs.get(principal, video_id)
    if not job.is_terminal:
        # A job about to complete is waited for, so that the read finds it done.
        job = await state.jobs.hold(principal, job)
    poll_after = None if job.is_terminal else poll_after_ms(job, time.time())
    return StatusResponse(orjson.dumps(video_json(job)), poll_after)


_CONTENT = "/content"
_VARIANTS = frozenset({"video", "thumbnail", "spritesheet"})
_QUERY_NAMES = frozenset({"variant", "index", "expires", "signature"})
_MAX_INDEX = 63  # the route's Query(le=63)


@dataclass(frozen=True, slots=True)
class _ContentQuery:
    video_id: str
    variant: str = "video"
    index: int = 0
    expires: int | None = None
    signature: str | None = None


def _content_query(scope: Scope) -> _ContentQuery | None:
    """What ``GET /v1/videos/<video id>/content?...`` asks for, when the query is one the
    route would read the same way; None for anything else."""
    if scope["method"] != "GET":
        return None
    path: str = scope["path"]
    if not path.startswith(_PREFIX) or not path.endswith(_CONTENT):
        return None
    video_id = path[len(_PREFIX) : -len(_CONTENT)]
    if not video_id.startswith(_ID_PREFIX) or "/" in video_id:
        return None
    fields: dict[str, str] = {}
    if scope["query_string"]:
        try:
            pairs = parse_qsl(
                scope["query_string"].decode("ascii"), keep_blank_values=True, strict_parsing=True
            )
        except (UnicodeDecodeError, ValueError):
            return None
        for name, value in pairs:
            if name in fields or name not in _QUERY_NAMES:
                return None
            fields[name] = value
    variant = fields.get("variant", "video")
    index, expires = fields.get("index", "0"), fields.get("expires")
    if variant not in _VARIANTS or not _digits(index, 2) or int(index) > _MAX_INDEX:
        return None
    if expires is not None and not _digits(expires, 15):
        return None
    return _ContentQuery(
        video_id,
        variant,
        int(index),
        int(expires) if expires is not None else None,
        fields.get("signature"),
    )


def _digits(text: str, most: int) -> bool:
    return 0 < len(text) <= most and text.isascii() and text.isdigit()


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
    """Answer the request if it is a status read or a plain download of a video; False
    to pass it on."""
    video_id = _video_id(scope)
    content = _content_query(scope) if video_id is None else None
    if video_id is None and content is None:
        return False
    state: ApiState | None = getattr(scope["app"].state, "api", None)
    if state is None:  # not started yet: FastAPI answers as it would
        return False
    scope[ROUTE_KEY] = ROUTE if content is None else CONTENT_ROUTE
    authorization = range_header = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            authorization = value.decode("latin-1")
        elif name == b"range":
            range_header = value.decode("latin-1")
    try:
        if content is not None:
            download = await video_content(
                state,
                authorization,
                content.video_id,
                variant=content.variant,
                index=content.index,
                expires=content.expires,
                signature=content.signature,
                method=scope["method"],
                range_header=range_header,
            )
            await download(scope, receive, send)
            return True
        assert video_id is not None
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
