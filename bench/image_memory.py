"""Measure a fresh `vidgate serve`'s RSS while clients send decompression-bomb-like images.

Reproduces issue 10 point 2: N parallel `POST /v1/videos` (multipart, test key, so the
sandbox renders each job) with an 8192x8192 PNG of zeros (~255 KB on the wire, 256 MiB
decoded as RGBA). Prints the server's RSS before, its peak while the requests are
answered, its peak while the jobs render, and what it holds a few seconds after.

    .venv/bin/python bench/image_memory.py                 # 6 uploads, n=1
    .venv/bin/python bench/image_memory.py --uploads 6 --n 2
    .venv/bin/python bench/image_memory.py --env MALLOC_ARENA_MAX=2

Run from the repository root (it reuses the test suite's server helpers).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.conftest import ServerProcess, fast_env, make_database
from tests.memory import MIB, RssSampler, zeros_png

from vidgate.db.embedded import EmbeddedPostgres


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--uploads", type=int, default=6)
    parser.add_argument("--n", type=int, default=1, help="outputs per job")
    parser.add_argument("--side", type=int, default=8192)
    parser.add_argument("--size", default="320x240", help="output size")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds idle before 'after'")
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the server")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="vidgate-image-memory-"))
    work.chmod(0o755)
    pg = EmbeddedPostgres(work / "pg").start()
    extra = dict(item.split("=", 1) for item in args.env)
    server = ServerProcess(
        data_dir=work / "data",
        env=fast_env(VIDGATE_DATABASE_URL=make_database(pg), **extra),
    )
    server.start()
    try:
        key = server.create_key("bench", "--test")
        image = zeros_png(args.side, args.side)
        assert server.proc is not None
        sampler = RssSampler(server.proc.pid)
        time.sleep(1.0)
        before = sampler.rss()
        headers = {"Authorization": f"Bearer {key}"}

        def upload(i: int) -> httpx.Response:
            return httpx.post(
                f"{server.base_url}/v1/videos",
                headers=headers,
                data={
                    "model": "sandbox",
                    "prompt": f"bomb {i}",
                    "seconds": "1",
                    "size": args.size,
                    "n": str(args.n),
                },
                files={"input_reference": ("zeros.png", image, "image/png")},
                timeout=300,
            )

        started = time.monotonic()
        with sampler, ThreadPoolExecutor(args.uploads) as pool:
            answers = list(pool.map(upload, range(args.uploads)))
        api_peak, api_s = sampler.peak, time.monotonic() - started
        ids = []
        for answer in answers:
            print(" ", answer.status_code, answer.text[:160])
            if answer.status_code == 200:
                ids.append(answer.json()["id"])
        with sampler:
            deadline = time.monotonic() + 600
            pending = set(ids)
            while pending and time.monotonic() < deadline:
                for video_id in list(pending):
                    url = f"{server.base_url}/v1/videos/{video_id}"
                    try:
                        got = httpx.get(url, headers=headers, timeout=60).json()
                    except httpx.HTTPError as exc:
                        print("  status read failed:", exc)
                        continue
                    if got["status"] in ("completed", "failed"):
                        print(" ", video_id, got["status"], got.get("error"))
                        pending.discard(video_id)
                time.sleep(0.2)
        job_peak, total_s = sampler.peak, time.monotonic() - started
        time.sleep(args.settle)
        after = sampler.rss()
        print(
            f"uploads={args.uploads} n={args.n} side={args.side} image={len(image)} B "
            f"env={extra or '-'}\n"
            f"  RSS before      {before / MIB:8.0f} MiB\n"
            f"  peak (requests) {api_peak / MIB:8.0f} MiB   ({api_s:.1f} s)\n"
            f"  peak (jobs)     {job_peak / MIB:8.0f} MiB   ({total_s:.1f} s in all)\n"
            f"  after {args.settle:.0f} s idle  {after / MIB:8.0f} MiB"
        )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
