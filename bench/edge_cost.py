"""The edge's own CPU per request (api/edge.py), in-process, against the edge of an
earlier commit: what the request id, the response meter and the HTTP metrics cost a
status read, without the noise of a whole server under wrk.

    python bench/edge_cost.py --baseline 167cf83

Each side answers the same fast-lane-shaped request from a trivial app, 50,000 times a
round, 7 rounds in turns; the figure is the least CPU time per request (process time).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from vidgate.api.edge import EdgeMiddleware
from vidgate.metrics import HTTP

REPO = Path(__file__).resolve().parents[1]
Edge = Callable[[dict[str, Any], Any, Any], Awaitable[None]]
_HEADERS = [
    (b"host", b"127.0.0.1:8000"),
    (b"authorization", b"Bearer vg_test_" + b"x" * 43),
    (b"user-agent", b"wrk"),
]


class _App:
    class state:
        api = None


async def _answer(scope: dict[str, Any], receive: Any, send: Any) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", b"300")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"x" * 300})


async def _send(message: Any) -> None:
    pass


async def _receive() -> dict[str, str]:
    return {"type": "http.request"}


def _scope() -> dict[str, Any]:
    return {
        "type": "http",
        "method": "GET",
        "path": "/v1/videos/video_x",
        "query_string": b"",
        "headers": _HEADERS,
        "app": _App,
        "vidgate.route": "/v1/videos/{video_id}",
    }


def _baseline_edge(rev: str) -> Edge:
    source = subprocess.run(
        ["git", "show", f"{rev}:src/vidgate/api/edge.py"],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "baseline_edge.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("baseline_edge", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    edge: Edge = module.EdgeMiddleware(_answer, max_body_bytes=1 << 20)
    return edge


async def _run(sides: dict[str, Edge], rounds: int, n: int) -> dict[str, float]:
    best = {name: float("inf") for name in sides}
    for _ in range(rounds):
        for name, edge in sides.items():
            started = time.process_time()
            for _ in range(n):
                await edge(_scope(), _receive, _send)
            best[name] = min(best[name], (time.process_time() - started) / n * 1e6)
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--baseline", required=True, help="a commit, e.g. main")
    args = parser.parse_args()
    sides: dict[str, Edge] = {
        f"edge of {args.baseline}": _baseline_edge(args.baseline),
        "this edge, VIDGATE_METRICS=false": EdgeMiddleware(_answer, max_body_bytes=1 << 20),
        "this edge, metrics on": EdgeMiddleware(_answer, max_body_bytes=1 << 20, metrics=HTTP),
    }
    for name, us in asyncio.run(_run(sides, rounds=7, n=50_000)).items():
        print(f"{name}: {us:.2f} µs CPU per request")


if __name__ == "__main__":
    sys.exit(main())
