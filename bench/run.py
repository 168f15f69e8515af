"""vidgate's benchmark suite in one command: B1-B9, each against its baseline in the same
run; prints a table and writes docs/benchmarks.md (machine, date, command).

    python bench/run.py                 # everything (about 20 minutes on 2 cores)
    python bench/run.py --quick         # smaller B3/B6, shorter runs (a few minutes)
    python bench/run.py --only B1,B2 --profile
    python bench/run.py --only B9             # the console's gallery, 10,000 videos
    python bench/run.py --only B7,B8 --litellm /path/to/venv/bin/litellm

Needs wrk and nginx (and py-spy for --profile); see bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shlex
import shutil
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.gallery import GalleryBench
from bench.harness import REPO, Postgres, machine_info, missing_tools
from bench.latency import LatencyBench, find_litellm
from bench.report import Results, Row, print_table, write_markdown
from bench.suites import Bench, Config

ALL = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B9")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python bench/run.py", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--only", default=",".join(ALL), help="comma-separated, e.g. B1,B2")
    parser.add_argument("--quick", action="store_true", help="B3 500 jobs x 20 s, B6 10k only")
    parser.add_argument("--profile", action="store_true", help="py-spy profiles of B1/B2/B4")
    parser.add_argument("--measure-s", type=int, help="seconds per wrk measurement")
    parser.add_argument("--b3-jobs", type=int)
    parser.add_argument("--b3-duration", type=float, help="seconds until a B3 task finishes")
    parser.add_argument(
        "--b3-poll-after-ms", type=int, help="make B3's fake send openai-poll-after-ms"
    )
    parser.add_argument("--b5-jobs", type=int)
    parser.add_argument(
        "--b9-requests", type=int, default=200, help="B9: API requests per case (200)"
    )
    parser.add_argument("--b6-sizes", help="comma-separated stored-job counts, e.g. 10000,100000")
    parser.add_argument("--b7-jobs", type=int, default=50, help="jobs finishing together")
    parser.add_argument("--b7-rounds", type=int, help="rounds per gateway (3, or 2 with --quick)")
    parser.add_argument(
        "--litellm", help="LiteLLM's `litellm` command for B7/B8 (default: on PATH, if any)"
    )
    parser.add_argument(
        "--b7-baseline-python",
        help="B7 also through the vidgate of another checkout: its venv's python",
    )
    parser.add_argument(
        "--output", type=Path, default=REPO / "docs" / "benchmarks.md", help="markdown report"
    )
    parser.add_argument("--no-write", action="store_true", help="do not write the report")
    parser.add_argument("--keep-work", action="store_true", help="keep the work directory")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    want = {x.strip().upper() for x in args.only.split(",") if x.strip()}
    unknown = want - set(ALL)
    if unknown:
        print(f"unknown benchmark(s): {', '.join(sorted(unknown))}; known: {', '.join(ALL)}")
        return 2
    tools = []
    if want & {"B1", "B2", "B4", "B6", "B8"}:
        tools.append("wrk")
    if "B4" in want:
        tools.append("nginx")
    if args.profile:
        tools.append("py-spy")
    missing = missing_tools(tools)
    if missing:
        print("missing tools; install them with:\n  " + "\n  ".join(missing))
        print("(apt-get update first; see bench/README.md)")
        return 2

    # SIGTERM as Ctrl-C: stop the servers, print and write what was measured.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    quick = args.quick
    work = Path(tempfile.mkdtemp(prefix="vidgate-bench-"))
    # The embedded PostgreSQL (an unprivileged user when run as root) and nginx's
    # workers must reach their files in here.
    work.chmod(0o755)
    out = REPO / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    sizes: tuple[int, ...] = (10_000,) if quick else (10_000, 100_000, 1_000_000)
    if args.b6_sizes:
        sizes = tuple(int(x) for x in args.b6_sizes.split(","))
    cfg = Config(
        quick=quick,
        work=work,
        out=out,
        profile=args.profile,
        measure_s=args.measure_s or (5 if quick else 10),
        warm_s=2 if quick else 3,
        connections=64,
        b3_jobs=args.b3_jobs or (500 if quick else 10_000),
        b3_duration_s=args.b3_duration or (20.0 if quick else 60.0),
        b3_poll_after_ms=args.b3_poll_after_ms,
        b5_jobs=args.b5_jobs or (20 if quick else 50),
        b6_sizes=sizes,
        content_bytes=100 * 2**20,
    )
    command = shlex.join(["python", "bench/run.py", *argv])
    results = Results(command=command, machine=machine_info(), started=dt.datetime.now(dt.UTC))
    print(f"vidgate benchmarks: {', '.join(sorted(want))} (work dir {work})")
    pg = Postgres(work / "pg-root")
    started = time.monotonic()
    try:
        pg.start()
        results.machine["database"] = pg.description
        bench = Bench(cfg, pg, results)
        groups = [
            ({"B1", "B2"}, bench.api_group),
            ({"B6"}, lambda _want: bench.b6_group()),
            ({"B4", "B5"}, bench.worker_group),
            ({"B3"}, lambda _want: bench.b3()),
            (
                {"B7", "B8"},
                LatencyBench(
                    bench,
                    litellm=find_litellm(args.litellm),
                    rounds=args.b7_rounds or (2 if quick else 3),
                    jobs=args.b7_jobs,
                    baseline_python=args.b7_baseline_python,
                ).run,
            ),
            ({"B9"}, GalleryBench(bench, requests=args.b9_requests).run),
        ]
        for names, run in groups:
            if not want & names:
                continue
            try:
                run(want)
            except (KeyboardInterrupt, SystemExit):
                results.note("interrupted: the figures above are all this run has")
                raise
            except Exception as exc:
                traceback.print_exc()
                label = ",".join(sorted(want & names))
                results.add(Row(label, "error", f"{type(exc).__name__}: {exc}"[:300], ok=False))
            if not args.no_write:
                write_markdown(results, args.output)  # what there is so far
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        results.note(f"total bench time {time.monotonic() - started:.0f} s")
        print()
        print_table(results)
        if not args.no_write:
            write_markdown(results, args.output)
            print(f"wrote {args.output}")
        if args.keep_work:
            print(f"work directory kept: {work} (PostgreSQL stops at exit)")
        else:
            pg.stop()
            shutil.rmtree(work, ignore_errors=True)
    if any("interrupted" in note for note in results.notes):
        return 130
    return 1 if any(r.ok is False for r in results.rows) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
