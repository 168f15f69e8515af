"""The baseline of B1/B2: the gateway's server stack answering a trivial route.

FastAPI on uvicorn in one process, with the uvicorn settings of ``vidgate serve``
(``cli.serve``: default loop, so uvloop, httptools, no access log, lifespan on) and
vidgate's orjson response class. The route does no I/O, so the gap between this and the
gateway is what vidgate itself costs per request (auth, database, serialisation,
middleware, and the connection limits its httptools protocol adds: ``api/protocol.py``,
which the baseline does without).

    python bench/trivial_app.py --port 8001
"""

from __future__ import annotations

import argparse

import uvicorn
from fastapi import FastAPI

from vidgate.api.responses import FastJSONResponse

app = FastAPI(title="vidgate-bench-trivial", default_response_class=FastJSONResponse)


@app.get("/v1/ping")
async def ping() -> FastJSONResponse:
    return FastJSONResponse({"object": "ping", "status": "ok"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.Server(
        uvicorn.Config(
            app,
            host=args.host,
            port=args.port,
            log_config=None,
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=10,
        )
    ).run()


if __name__ == "__main__":
    main()
