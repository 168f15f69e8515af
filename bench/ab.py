"""A/B of the JSON create path (B2) between this checkout and another one.

B2's "CPU per create" moves by up to 30 % between runs of the same code on a busy
2-core machine, so a before/after comparison of two full runs cannot tell a 10 %
regression from noise. This script narrows it down two ways, both against a baseline
measured in the same run:

- **CPU per create, alternating:** each round starts one gateway per checkout in turn
  (same embedded PostgreSQL, a fresh database each), saturates ``POST /v1/videos`` with
  wrk for ``--seconds`` and reads the gateway's CPU; the median over ``--rounds`` is
  compared.
- **Python calls per create** (``--calls``): the gateway runs under cProfile, switched
  on by a signal after a warm-up, while one client makes ``--calls`` creates in turn.
  The count does not depend on the machine's load: a change in the work Python does
  per request shows here even when CPU time is too noisy to see it.

    python bench/ab.py --other ../vidgate-before --rounds 4 --calls 1000

``--other`` is a checkout with its own ``.venv`` in which vidgate is installed (say
``git worktree add ../vidgate-before <rev>``, then ``python -m venv .venv`` and
``pip install -e .`` there).
"""

from __future__ import annotations

import argparse
import json
import pstats
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import psutil

from bench.harness import REPO, Gateway, Postgres, wrk
from bench.suites import SANDBOX_JSON

PROFILE_HOOK = Path(__file__).resolve().parent / "ab_profile"


class Side:
    def __init__(self, label: str, checkout: Path) -> None:
        self.label = label
        self.python = str(checkout / ".venv" / "bin" / "python")
        self.cpu_ms: list[float] = []
        self.rps: list[float] = []
        self.calls = 0.0


class SideGateway(Gateway):
    """``vidgate serve`` with the given checkout's interpreter."""

    def __init__(self, python: str, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.python = python

    def spawn(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        super().spawn([self.python, *argv[1:]], env)


def start(pg: Postgres, work: Path, side: Side, n: int, env: dict[str, str]) -> SideGateway:
    url = pg.new_database(f"ab{n}")
    gw = SideGateway(side.python, f"ab{n}", work / f"data{n}", url, worker=False, env=env)
    gw.start()
    return gw


def cpu_round(pg: Postgres, work: Path, side: Side, n: int, seconds: int) -> None:
    gw = start(pg, work, side, n, {})
    try:
        key = gw.create_key("ab")
        body = work / "create.json"
        body.write_text(json.dumps(SANDBOX_JSON))
        headers = {"Authorization": f"Bearer {key.secret}", "Content-Type": "application/json"}
        url = f"{gw.base_url}/v1/videos"
        load = {"method": "POST", "headers": headers, "body_file": body, "connections": 64}
        wrk(url, duration_s=3, **load)  # type: ignore[arg-type]
        proc = psutil.Process(gw.pid)
        before = proc.cpu_times()
        result = wrk(url, duration_s=seconds, **load)  # type: ignore[arg-type]
        after = proc.cpu_times()
        used = after.user + after.system - before.user - before.system
        side.cpu_ms.append(1000 * used / max(result.requests, 1))
        side.rps.append(result.rps)
        print(f"  {side.label}: {side.cpu_ms[-1]:.3f} ms per create, {result.rps:.0f}/s")
    finally:
        gw.stop()
        pg.drop_database(gw.database_url)


def calls_round(pg: Postgres, work: Path, side: Side, n: int, creates: int) -> None:
    out = work / f"profile{n}.out"
    env = {"VIDGATE_AB_PROFILE": str(out), "PYTHONPATH": str(PROFILE_HOOK)}
    gw = start(pg, work, side, n, env)
    try:
        key = gw.create_key("ab")
        with httpx.Client(
            base_url=gw.base_url, headers={"Authorization": f"Bearer {key.secret}"}
        ) as c:
            for _ in range(200):
                c.post("/v1/videos", json=SANDBOX_JSON).raise_for_status()
            gw.proc.send_signal(signal.SIGUSR1)  # type: ignore[union-attr]
            time.sleep(0.5)
            for _ in range(creates):
                c.post("/v1/videos", json=SANDBOX_JSON).raise_for_status()
            gw.proc.send_signal(signal.SIGUSR2)  # type: ignore[union-attr]
        deadline = time.monotonic() + 30
        while not out.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(0.5)
        side.calls = pstats.Stats(str(out)).total_calls / creates  # type: ignore[attr-defined]
        print(f"  {side.label}: {side.calls:.0f} Python calls per create")
    finally:
        gw.stop()
        pg.drop_database(gw.database_url)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--other", type=Path, required=True, help="the baseline checkout")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--calls", type=int, default=0, help="creates profiled per side")
    args = parser.parse_args(argv)
    base, this = Side("other", args.other.resolve()), Side("this", REPO)
    with tempfile.TemporaryDirectory(prefix="vidgate-ab-") as tmp:
        work = Path(tmp)
        pg = Postgres(work / "pg")
        pg.start()
        try:
            n = 0
            for i in range(args.rounds):
                print(f"* round {i + 1}/{args.rounds}")
                for side in (base, this) if i % 2 == 0 else (this, base):
                    n += 1
                    cpu_round(pg, work, side, n, args.seconds)
            if args.calls:
                print(f"* Python calls, {args.calls} creates each")
                for side in (base, this):
                    n += 1
                    calls_round(pg, work, side, n, args.calls)
        finally:
            pg.stop()
    print()
    print("| | other | this | ratio |")
    print("|---|---|---|---|")
    if base.cpu_ms:
        b, t = statistics.median(base.cpu_ms), statistics.median(this.cpu_ms)
        print(
            f"| CPU per create, median of {args.rounds} | {b:.3f} ms | {t:.3f} ms | {t / b:.2f} |"
        )
        b, t = statistics.median(base.rps), statistics.median(this.rps)
        print(f"| creates/s, median | {b:,.0f}/s | {t:,.0f}/s | {t / b:.2f} |")
    if args.calls:
        b, t = base.calls, this.calls
        print(f"| Python calls per create | {b:,.0f} | {t:,.0f} | {t / b:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
