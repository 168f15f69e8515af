"""B7's minimal pass-through gateway: what a stateless video gateway does at least.

It forwards ``POST /v1/videos`` (the body as sent), ``GET /v1/videos/{id}`` and ``GET
/v1/videos/{id}/content`` (streamed) to one OpenAI-shaped upstream with the upstream's
key, and answers what the upstream answered. No job store, no copy of the result, no
auth of its own: the floor that any pass-through (LiteLLM's included) sits above.

    python bench/passthrough.py --port 9001 --upstream http://127.0.0.1:9000/v1 --api-key sk-...
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

# Answer headers worth passing on (hop-by-hop ones and the length of a re-chunked body
# are not).
_KEEP = ("content-type", "openai-poll-after-ms", "retry-after")


class PassThrough:
    def __init__(self, upstream: str, api_key: str) -> None:
        self.client = httpx.AsyncClient(
            base_url=upstream.rstrip("/"),
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=120,
            limits=httpx.Limits(max_connections=256, max_keepalive_connections=256),
        )

    @staticmethod
    def _answer(upstream: httpx.Response) -> Response:
        headers = {k: v for k, v in upstream.headers.items() if k.lower() in _KEEP}
        return Response(upstream.content, status_code=upstream.status_code, headers=headers)

    async def create(self, request: Request) -> Response:
        headers = {"Content-Type": request.headers.get("content-type", "application/json")}
        if key := request.headers.get("idempotency-key"):
            headers["Idempotency-Key"] = key
        upstream = await self.client.post("/videos", content=await request.body(), headers=headers)
        return self._answer(upstream)

    async def retrieve(self, request: Request) -> Response:
        return self._answer(await self.client.get(f"/videos/{request.path_params['video_id']}"))

    async def content(self, request: Request) -> Response:
        sent = self.client.build_request(
            "GET", f"/videos/{request.path_params['video_id']}/content"
        )
        upstream = await self.client.send(sent, stream=True)

        async def body() -> AsyncIterator[bytes]:
            async for chunk in upstream.aiter_raw():
                yield chunk

        headers = {k: v for k, v in upstream.headers.items() if k.lower() in _KEEP}
        return StreamingResponse(
            body(),
            status_code=upstream.status_code,
            headers=headers,
            background=BackgroundTask(upstream.aclose),
        )

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/videos", self.create, methods=["POST"]),
                Route("/v1/videos/{video_id}", self.retrieve, methods=["GET"]),
                Route("/v1/videos/{video_id}/content", self.content, methods=["GET"]),
            ]
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="e.g. http://127.0.0.1:9000/v1")
    parser.add_argument("--api-key", required=True)
    args = parser.parse_args()
    uvicorn.run(
        PassThrough(args.upstream, args.api_key).app(),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        lifespan="off",
    )


if __name__ == "__main__":
    main()
