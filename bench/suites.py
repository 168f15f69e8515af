"""B1-B6. Each measures the gateway and its baseline in the same run and adds rows."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import statistics
import struct
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import yaml

from bench.harness import (
    PY,
    REPO,
    ApiKey,
    CpuMeter,
    FakeUpstream,
    Gateway,
    Nginx,
    Postgres,
    PySpy,
    Sampler,
    TrivialApp,
    WrkResult,
    dbname,
    hot_spots,
    percentile,
    wrk,
)
from bench.report import Profile, Results, Row, fmt_ms, fmt_rate, fmt_ratio
from vidgate.engine.backoff import adaptive_poll_s

# The cheapest sandbox job: 1 s of 426x240 at 8 fps, rendered without simulated latency.
SANDBOX_FIELDS: dict[str, str] = {
    "model": "sandbox",
    "prompt": "benchmark: a paper boat on a river",
    "seconds": "1",
    "size": "426x240",
    "fps": "8",
}
SANDBOX_JSON: dict[str, Any] = {**SANDBOX_FIELDS, "metadata": {"sandbox_latency_ms": "0"}}
BOUNDARY = "vidgatebenchboundary7MA4YWxkTrZu0gW"
B2_RATE = 300  # creates/s at which B2's p99 goal applies
MIB = 1 << 20


@dataclass(frozen=True)
class Config:
    quick: bool
    work: Path
    out: Path
    profile: bool
    measure_s: int
    warm_s: int
    connections: int
    b3_jobs: int
    b3_duration_s: float
    b3_poll_after_ms: int | None
    b5_jobs: int
    b6_sizes: tuple[int, ...]
    content_bytes: int


class Bench:
    def __init__(self, cfg: Config, pg: Postgres, results: Results) -> None:
        self.cfg = cfg
        self.pg = pg
        self.results = results
        self.trivial_rps: float | None = None
        self.trivial_cpu_ms = 0.0

    # --- helpers ----------------------------------------------------------------------

    def add(self, row: Row) -> None:
        self.results.add(row)

    def gateway(
        self, name: str, *, worker: bool, env: dict[str, str] | None = None, python: str = PY
    ) -> Gateway:
        data = self.cfg.work / name
        data.mkdir(parents=True, exist_ok=True)
        database = self.pg.new_database(name)
        gw = Gateway(name, data / "data", database, worker=worker, env=env, python=python)
        print(f"* starting gateway {name!r} ({'API + worker' if worker else 'API only'})")
        gw.start()
        return gw

    def body_files(self) -> tuple[Path, Path]:
        json_file = self.cfg.work / "create.json"
        json_file.write_bytes(json.dumps(SANDBOX_JSON).encode())
        parts = [*SANDBOX_FIELDS.items(), ("metadata[sandbox_latency_ms]", "0")]
        body = "".join(
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
            for k, v in parts
        )
        multipart_file = self.cfg.work / "create.multipart"
        multipart_file.write_bytes(f"{body}--{BOUNDARY}--\r\n".encode())
        return json_file, multipart_file

    def load(self, url: str, **kwargs: Any) -> WrkResult:
        result = wrk(url, **kwargs)
        if result.failed:
            self.results.note(f"wrk saw errors on {url}: {result.errors}")
        return result

    def load_cpu(
        self, pid: int, url: str, *, database: str | None = None, **kwargs: Any
    ) -> tuple[WrkResult, float, float]:
        """``load`` plus CPU milliseconds per request of ``pid`` and of the PostgreSQL
        backends serving ``database``: less noisy than req/s when other work shares
        the machine."""

        def pg_pids() -> list[int]:
            return self.pg.server_pids(database) if database else []

        with CpuMeter(lambda: [pid]) as own, CpuMeter(pg_pids) as pg:
            result = self.load(url, **kwargs)
        n = max(result.requests, 1)
        return result, 1000 * own.seconds / n, 1000 * pg.seconds / n

    def warm(self, url: str, **kwargs: Any) -> None:
        wrk(url, connections=self.cfg.connections, duration_s=self.cfg.warm_s, **kwargs)

    def profiled(self, name: str, pid: int, run: Callable[[], object]) -> None:
        """Run ``run`` again under py-spy and keep the hot spots (``--profile``)."""
        if not self.cfg.profile:
            return
        out = self.cfg.out / f"profile-{name}.txt"
        with PySpy(pid, out, duration_s=self.cfg.measure_s + 1):
            run()
        self._keep_profile(name, out)

    def db_xacts(self, url: str) -> int:
        with psycopg.connect(url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT xact_commit + xact_rollback FROM pg_stat_database"
                " WHERE datname = current_database()"
            ).fetchone()
        assert row is not None
        return int(row[0])

    def xacts_per_request(self, url: str, send: Callable[[httpx.Client], object], n: int) -> float:
        """Database transactions per request, from pg_stat_database around ``n`` requests.

        Backends publish their counters when idle, at most every 10 s (PostgreSQL 15+):
        wait that long before and after. The bench's own two reads are subtracted.
        """
        time.sleep(11)
        before = self.db_xacts(url)
        with httpx.Client(timeout=30) as client:
            for _ in range(n):
                send(client)
        time.sleep(11)
        after = self.db_xacts(url)
        return (after - before - 1) / n

    # --- B1, B2, B6: the API tier ----------------------------------------------------

    def api_group(self, want: set[str]) -> None:
        cfg = self.cfg
        # B2's metered creates go to a live deployment that is never called (no
        # worker here): the card exists so that a live key can create.
        models_file = cfg.work / "api-models.yaml"
        models_file.write_text(yaml.safe_dump(b3_catalogue("http://127.0.0.1:9")))
        gw = self.gateway("api", worker=False, env={"VIDGATE_MODELS_FILE": str(models_file)})
        trivial = TrivialApp(cfg.work / "trivial.log")
        try:
            key = gw.create_key("bench")
            trivial.start()
            target = create_video(gw, key)
            auth = {"Authorization": f"Bearer {key.secret}"}
            get_url = f"{gw.base_url}/v1/videos/{target}"
            print(f"* B1 baseline: trivial route, {cfg.connections} connections")
            self.warm(trivial.url)
            base, base_cpu, _ = self.load_cpu(
                trivial.pid, trivial.url, connections=cfg.connections, duration_s=cfg.measure_s
            )
            self.trivial_rps = base.rps
            self.trivial_cpu_ms = base_cpu
            json_file, multipart_file = self.body_files()
            if "B1" in want:
                self.b1(gw, get_url, auth, base)
                self.b1_metrics_cost(gw, get_url, auth)
            if "B2" in want:
                self.b2(gw, auth, base, json_file, multipart_file)
                self.b2_metered(gw)
        finally:
            trivial.stop()
            gw.stop()
            self.pg.drop_database(gw.database_url)

    def b1_metrics_cost(self, gw: Gateway, url: str, auth: dict[str, str]) -> None:
        """B1 on a second gateway with ``VIDGATE_METRICS=false`` (no HTTP metrics, no
        /metrics), measured in turns with the first: what counting every request by
        route costs a status read (the request id is bound on both)."""
        cfg = self.cfg
        off = self.gateway("api-nometrics", worker=False, env={"VIDGATE_METRICS": "false"})
        try:
            key = off.create_key("bench")
            off_url = f"{off.base_url}/v1/videos/{create_video(off, key)}"
            off_auth = {"Authorization": f"Bearer {key.secret}"}
            print("* B1 metrics cost: metrics on and off, in turns")
            self.warm(off_url, headers=off_auth)
            sides = {"on": (gw, url, auth), "off": (off, off_url, off_auth)}
            cpu: dict[str, list[float]] = {"on": [], "off": []}
            rps: dict[str, list[float]] = {"on": [], "off": []}
            # ABBA turns, so that a drift of the machine's load meets both sides alike.
            for side in ("on", "off", "off", "on", "on", "off", "off", "on"):
                g, target, headers = sides[side]
                result, cpu_ms, _ = self.load_cpu(
                    g.pid,
                    target,
                    connections=cfg.connections,
                    duration_s=cfg.measure_s,
                    headers=headers,
                )
                cpu[side].append(cpu_ms)
                rps[side].append(result.rps)
            on_cpu, off_cpu = (statistics.median(cpu[s]) for s in ("on", "off"))
            on_rps, off_rps = (statistics.median(rps[s]) for s in ("on", "off"))
            turns = ", ".join(f"{s} {c:.3f}" for s in ("on", "off") for c in cpu[s])
            self.results.note(f"B1 metrics on/off, CPU ms per GET of each turn: {turns}")
            cost = on_cpu / off_cpu - 1
            self.add(
                Row(
                    "B1",
                    "metrics on / off: CPU per GET (req/s)",
                    f"{on_cpu:.3f} ms ({fmt_rate(on_rps)})",
                    f"{off_cpu:.3f} ms ({fmt_rate(off_rps)})",
                    f"{cost:+.1%} CPU, {on_rps / off_rps - 1:+.1%} req/s",
                    "<= +5 % CPU",
                    cost <= 0.05,
                )
            )
        finally:
            off.stop()
            self.pg.drop_database(off.database_url)

    def b6_group(self) -> None:
        """B6 on two gateways of their own: one whose table stays at the base size and
        one whose table grows; their runs alternate, so that both see the same
        machine (the load of other work drifts over a run of many minutes)."""
        base = self.gateway("b6-base", worker=False)
        grown = self.gateway("b6", worker=False)
        try:
            json_file, _ = self.body_files()
            sides = []
            for gw in (base, grown):
                key = gw.create_key("bench")
                sides.append(B6Side(gw, key, create_video(gw, key)))
            self.b6(sides[0], sides[1], json_file)
        finally:
            for gw in (base, grown):
                gw.stop()
                self.pg.drop_database(gw.database_url)

    def b1(self, gw: Gateway, url: str, auth: dict[str, str], base: WrkResult) -> None:
        cfg = self.cfg
        print(f"* B1: GET /v1/videos/{{id}}, {cfg.connections} connections")
        self.warm(url, headers=auth)
        g, cpu_ms, pg_ms = self.load_cpu(
            gw.pid,
            url,
            database=dbname(gw.database_url),
            connections=cfg.connections,
            duration_s=cfg.measure_s,
            headers=auth,
        )
        ratio = g.rps / base.rps
        self.add(
            Row(
                "B1",
                f"GET /v1/videos/{{id}} req/s ({cfg.connections} conn)",
                fmt_rate(g.rps),
                fmt_rate(base.rps),
                fmt_ratio(ratio),
                ">= 0.5 x baseline",
                ratio >= 0.5 and g.failed == 0,
            )
        )
        self.add(Row("B1", "p50 latency", fmt_ms(g.p50_ms), fmt_ms(base.p50_ms)))
        self.add(
            Row(
                "B1",
                "CPU per request: gateway (PostgreSQL)",
                f"{cpu_ms:.2f} ms ({pg_ms:.2f} ms)",
                f"{self.trivial_cpu_ms:.2f} ms",
                fmt_ratio(cpu_ms / self.trivial_cpu_ms) if self.trivial_cpu_ms else "",
            )
        )
        self.add(
            Row(
                "B1",
                f"p99 latency ({cfg.connections} conn, saturated)",
                fmt_ms(g.p99_ms),
                fmt_ms(base.p99_ms),
                goal="< 20 ms",
                ok=g.p99_ms < 20,
            )
        )
        rate = max(50, round(g.rps / 2, -1))
        paced = self.load(
            url, connections=cfg.connections, duration_s=cfg.measure_s, headers=auth, rate=rate
        )
        self.add(
            Row(
                "B1",
                f"p50 / p99 at half load (offered {rate:,.0f}/s, done {paced.rps:,.0f}/s)",
                f"{fmt_ms(paced.p50_ms)} / {fmt_ms(paced.p99_ms)}",
            )
        )
        per_request = self.xacts_per_request(
            gw.database_url, lambda c: c.get(url, headers=auth).raise_for_status(), 200
        )
        self.add(Row("B1", "DB transactions per GET (auth cached)", f"{per_request:.2f}"))
        self.profiled(
            "B1-get",
            gw.pid,
            lambda: wrk(url, connections=cfg.connections, duration_s=cfg.measure_s, headers=auth),
        )

    def b2(
        self,
        gw: Gateway,
        auth: dict[str, str],
        base: WrkResult,
        json_file: Path,
        multipart_file: Path,
    ) -> None:
        cfg = self.cfg
        url = f"{gw.base_url}/v1/videos"
        shapes = {
            "JSON": (json_file, "application/json"),
            "multipart": (multipart_file, f"multipart/form-data; boundary={BOUNDARY}"),
        }
        for shape, (body, content_type) in shapes.items():
            headers = {**auth, "Content-Type": content_type}
            kwargs: dict[str, Any] = {"method": "POST", "headers": headers, "body_file": body}
            print(f"* B2: POST /v1/videos {shape}, {cfg.connections} connections")
            self.warm(url, **kwargs)
            sat, cpu_ms, pg_ms = self.load_cpu(
                gw.pid,
                url,
                database=dbname(gw.database_url),
                connections=cfg.connections,
                duration_s=cfg.measure_s,
                **kwargs,
            )
            paced = self.load(
                url, connections=cfg.connections, duration_s=cfg.measure_s, rate=B2_RATE, **kwargs
            )
            self.add(
                Row(
                    "B2",
                    f"POST {shape} creates/s ({cfg.connections} conn)",
                    fmt_rate(sat.rps),
                    f"{fmt_rate(base.rps)} (trivial GET)",
                    fmt_ratio(sat.rps / base.rps),
                    ">= 300/s",
                    sat.rps >= B2_RATE and sat.failed == 0,
                )
            )
            self.add(
                Row(
                    "B2",
                    f"POST {shape} p99 at {B2_RATE}/s offered ({paced.rps:,.0f}/s done)",
                    fmt_ms(paced.p99_ms),
                    goal="< 50 ms",
                    ok=paced.p99_ms < 50 and paced.rps >= 0.97 * B2_RATE and paced.failed == 0,
                )
            )
            self.add(
                Row(
                    "B2",
                    f"POST {shape} p50 / p99 saturated",
                    f"{fmt_ms(sat.p50_ms)} / {fmt_ms(sat.p99_ms)}",
                    f"{fmt_ms(base.p50_ms)} / {fmt_ms(base.p99_ms)}",
                )
            )
            self.add(
                Row(
                    "B2",
                    f"POST {shape} CPU per create: gateway (PostgreSQL)",
                    f"{cpu_ms:.2f} ms ({pg_ms:.2f} ms)",
                    f"{self.trivial_cpu_ms:.2f} ms (trivial GET)",
                )
            )
            if shape == "JSON":
                per_request = self.xacts_per_request(
                    gw.database_url,
                    lambda c: c.post(url, headers=auth, json=SANDBOX_JSON).raise_for_status(),
                    200,
                )
                self.add(Row("B2", "DB transactions per create", f"{per_request:.2f}"))
            self.profiled(
                f"B2-{shape.lower()}",
                gw.pid,
                functools.partial(
                    wrk, url, connections=cfg.connections, duration_s=cfg.measure_s, **kwargs
                ),
            )

    def b2_metered(self, gw: Gateway) -> None:
        """JSON creates of a live key under everything issue 13 puts in the path: an rpm
        and a max-concurrent limit on the key and its project, and a monthly project
        budget (reservation under the budget's row lock), against the same creates of a
        key with none of them, measured in turn on the same gateway."""
        cfg = self.cfg
        url = f"{gw.base_url}/v1/videos"
        body = cfg.work / "create-metered.json"
        body.write_bytes(json.dumps(METERED_JSON).encode())
        plain = gw.create_key("bench-plain", live=True, tenant="bench-plain")
        metered = gw.create_key(
            "bench-metered",
            live=True,
            tenant="bench-metered",
            extra=["--rpm", "1000000", "--max-concurrent", "1000000"],
        )
        gw.cli("projects", "limits", "bench-metered", "--rpm", "1000000")
        gw.cli("projects", "limits", "bench-metered", "--max-concurrent", "1000000")
        budget = ["--tenant", "bench-metered", "--usd", "999999", "--period", "month"]
        gw.cli("budgets", "set", *budget)
        costs: dict[str, list[tuple[WrkResult, float, float]]] = {"plain": [], "metered": []}
        for _ in range(2):
            for name, key in (("plain", plain), ("metered", metered)):
                kwargs: dict[str, Any] = {
                    "method": "POST",
                    "headers": {
                        "Authorization": f"Bearer {key.secret}",
                        "Content-Type": "application/json",
                    },
                    "body_file": body,
                }
                print(f"* B2: POST /v1/videos JSON, live key, {name}")
                self.warm(url, **kwargs)
                costs[name].append(
                    self.load_cpu(
                        gw.pid,
                        url,
                        database=dbname(gw.database_url),
                        connections=cfg.connections,
                        duration_s=cfg.measure_s,
                        **kwargs,
                    )
                )

        def median_cpu(name: str) -> tuple[float, float, float, int]:
            runs = sorted(costs[name], key=lambda c: c[1])
            mid = runs[len(runs) // 2]
            return mid[1], mid[2], mid[0].rps, sum(r[0].failed for r in runs)

        p_cpu, p_pg, p_rps, _ = median_cpu("plain")
        m_cpu, m_pg, m_rps, m_failed = median_cpu("metered")
        self.add(
            Row(
                "B2",
                "POST JSON live creates/s: limits + budget vs none",
                fmt_rate(m_rps),
                fmt_rate(p_rps),
                fmt_ratio(m_rps / p_rps),
                ">= 300/s",
                m_rps >= B2_RATE and m_failed == 0,
            )
        )
        self.add(
            Row(
                "B2",
                "POST JSON live CPU per create: limits + budget vs none: gateway (PostgreSQL)",
                f"{m_cpu:.2f} ms ({m_pg:.2f} ms)",
                f"{p_cpu:.2f} ms ({p_pg:.2f} ms)",
                fmt_ratio(m_cpu / p_cpu) if p_cpu else "",
            )
        )

    def b6(self, base: B6Side, grown: B6Side, json_file: Path) -> None:
        cfg = self.cfg
        repeats = 2 if cfg.quick else 3
        kwargs: dict[str, Any] = {"connections": cfg.connections, "duration_s": cfg.measure_s}

        def runner(side: B6Side, what: str) -> Callable[[], Cost]:
            """One measured run of ``what`` against ``side``, warmed up once."""
            auth = {"Authorization": f"Bearer {side.key.secret}"}
            if what == "GET":
                url = f"{side.gw.base_url}/v1/videos/{side.template}"
                # GETs spread over the stored jobs, not one hot row.
                paths = cfg.work / f"b6-paths-{side.gw.name}.txt"
                write_job_paths(side.gw.database_url, paths, limit=50_000)
                more: dict[str, Any] = {"headers": auth, "paths_file": paths}
            else:
                url = f"{side.gw.base_url}/v1/videos"
                more = {
                    "method": "POST",
                    "headers": {**auth, "Content-Type": "application/json"},
                    "body_file": json_file,
                }
            self.warm(url, **more)
            database = dbname(side.gw.database_url)

            def run() -> Cost:
                return Cost(*self.load_cpu(side.gw.pid, url, database=database, **more, **kwargs))

            return run

        def measure() -> dict[str, tuple[Cost, Cost]]:
            """(base, grown) per request kind: the least CPU per request of a few runs
            each, base and grown runs alternating. Other work on the machine only ever
            adds to the CPU per request (caches, frequency, steal time)."""
            found: dict[str, tuple[Cost, Cost]] = {}
            for what in ("GET", "POST"):
                pair = (runner(base, what), runner(grown, what))
                measured: tuple[list[Cost], list[Cost]] = ([], [])
                for _ in range(repeats):
                    for i, run in enumerate(pair):
                        measured[i].append(run())
                found[what] = (
                    min(measured[0], key=lambda c: c.total),
                    min(measured[1], key=lambda c: c.total),
                )
            # The base's table stays at its size: drop what its creates added.
            trim_jobs(base.gw.database_url, base.template)
            return found

        grow_jobs(base.gw.database_url, base.template, base.key, B6_BASE_JOBS)
        print(f"* B6: base, {count_jobs(base.gw.database_url):,} stored jobs")
        for size in cfg.b6_sizes:
            started = time.monotonic()
            added = grow_jobs(grown.gw.database_url, grown.template, grown.key, size)
            print(f"* B6: {size:,} stored jobs (+{added:,} in {time.monotonic() - started:.0f} s)")
            found = measure()
            for what, label in (("GET", "GET (random stored id)"), ("POST", "POST JSON")):
                then, cost = found[what]
                ratio = cost.total / then.total if then.total else float("nan")
                self.add(
                    Row(
                        "B6",
                        f"{label} with {size:,} jobs: CPU per request",
                        cost.describe(),
                        f"{B6_BASE_JOBS:,} jobs: {then.describe()}",
                        fmt_ratio(ratio),
                        "<= 1.2 x base",
                        ratio <= 1.2 and cost.result.failed == 0,
                    )
                )

    # --- B4, B5: a gateway with its worker -----------------------------------------

    def worker_group(self, want: set[str]) -> None:
        gw = self.gateway("worker", worker=True, env={"VIDGATE_SANDBOX_LATENCY_S": "0"})
        try:
            key = gw.create_key("bench")
            if "B5" in want:
                self.b5(gw, key)
            if "B4" in want:
                self.b4(gw, key)
        finally:
            gw.stop()
            self.pg.drop_database(gw.database_url)

    def b5(self, gw: Gateway, key: ApiKey) -> None:
        cfg = self.cfg
        print(f"* B5: {cfg.b5_jobs} sandbox jobs, one at a time, no simulated latency")
        render_s = sandbox_render_s()
        walls: list[float] = []
        to_submit: list[float] = []
        after_submit: list[float] = []
        with httpx.Client(timeout=30) as client, psycopg.connect(gw.database_url) as conn:
            conn.autocommit = True
            wait_completed(conn, create_video(gw, key, client=client), timeout=60)  # warm-up
            for _ in range(cfg.b5_jobs):
                job = create_video(gw, key, client=client)
                created, submitted, completed = wait_completed(conn, job, timeout=60)
                walls.append(completed - created)
                to_submit.append(submitted - created)
                after_submit.append(completed - submitted)
        overheads = [w - render_s for w in walls]
        p50, p99 = percentile(overheads, 50), percentile(overheads, 99)
        self.add(
            Row(
                "B5",
                "overhead per job p50 (wall - upstream)",
                fmt_ms(1000 * p50),
                goal="< 300 ms",
                ok=p50 < 0.3,
            )
        )
        self.add(Row("B5", "overhead per job p99", fmt_ms(1000 * p99), goal="< 1 s", ok=p99 < 1))

        def pair(values: list[float]) -> str:
            return (
                f"{fmt_ms(1000 * percentile(values, 50))} / {fmt_ms(1000 * percentile(values, 99))}"
            )

        self.add(
            Row(
                "B5",
                "wall created_at -> completed_at p50 / p99",
                pair(walls),
                f"upstream (sandbox render) {fmt_ms(1000 * render_s)}",
            )
        )
        self.add(Row("B5", "  of which created_at -> submitted_at", pair(to_submit)))
        self.add(
            Row(
                "B5", "  of which submitted_at -> completed_at (poll, finalize)", pair(after_submit)
            )
        )

    def b4(self, gw: Gateway, key: ApiKey) -> None:
        cfg = self.cfg
        size = cfg.content_bytes
        print(f"* B4: GET .../content of a {size / MIB:.0f} MiB MP4, against nginx")
        auth = {"Authorization": f"Bearer {key.secret}"}
        source = create_video(gw, key)
        with psycopg.connect(gw.database_url) as conn:
            wait_completed(conn, source, timeout=120)
        mp4 = self.cfg.work / "b4" / "video.mp4"
        mp4.parent.mkdir(parents=True, exist_ok=True)
        make_big_mp4(mp4, size)
        video_id, blob_path = store_big_output(gw, source, mp4)
        # nginx serves the very same bytes: a hard link to the stored blob.
        root = self.cfg.work / "b4" / "www"
        root.mkdir(exist_ok=True)
        served = root / "video.mp4"
        try:
            os.link(blob_path, served)
        except OSError:
            served.write_bytes(blob_path.read_bytes())
        for folder in (self.cfg.work, self.cfg.work / "b4", root):
            folder.chmod(0o755)
        served.chmod(0o644)
        nginx = Nginx(self.cfg.work / "b4" / "nginx", root)
        nginx.start()
        try:
            gw_url = f"{gw.base_url}/v1/videos/{video_id}/content"
            check_content(gw_url, auth, size)
            check_content(nginx.url("video.mp4"), {}, size)
            middle = size // 2
            ranged = {"Range": f"bytes={middle}-{middle + 10 * MIB - 1}"}
            for label, extra, conns in (("full file", {}, 4), ("Range 10 MiB", ranged, 8)):
                kwargs: dict[str, Any] = {
                    "connections": conns,
                    "duration_s": cfg.measure_s,
                    "threads": 2,
                    "timeout_s": 60,
                }
                ng = self.load(nginx.url("video.mp4"), headers=extra, **kwargs)
                g = self.load(gw_url, headers={**auth, **extra}, **kwargs)
                ratio = g.bytes_per_s / ng.bytes_per_s
                self.add(
                    Row(
                        "B4",
                        f"{label}: MiB/s ({conns} conn)",
                        fmt_rate(g.bytes_per_s / MIB, " MiB/s"),
                        f"nginx {fmt_rate(ng.bytes_per_s / MIB, ' MiB/s')}",
                        fmt_ratio(ratio),
                        ">= 0.8",
                        ratio >= 0.8 and g.failed == 0,
                    )
                )
            self.profiled(
                "B4-content",
                gw.pid,
                lambda: wrk(gw_url, connections=4, duration_s=cfg.measure_s, headers=auth),
            )
        finally:
            nginx.stop()

    # --- B3: many jobs in flight ------------------------------------------------------

    def b3(self) -> None:
        cfg = self.cfg
        n, duration = cfg.b3_jobs, cfg.b3_duration_s
        print(
            f"* B3: {n:,} jobs in flight on a fake upstream that finishes each after {duration} s"
        )
        fake = FakeUpstream(
            cfg.work / "fake-upstream.log", duration_s=duration, poll_after_ms=cfg.b3_poll_after_ms
        )
        fake.start()
        models_file = cfg.work / "b3-models.yaml"
        models_file.write_text(yaml.safe_dump(b3_catalogue(fake.base_url)))
        gw = self.gateway("b3", worker=True, env={"VIDGATE_MODELS_FILE": str(models_file)})
        try:
            key = gw.create_key("bench-live", live=True, tenant="bench")
            self._b3_measure(gw, key, fake, n, duration)
        finally:
            gw.stop()
            fake.stop()
            self.pg.drop_database(gw.database_url)

    def _b3_measure(
        self, gw: Gateway, key: ApiKey, fake: FakeUpstream, n: int, duration: float
    ) -> None:
        cfg = self.cfg
        idle_s = 10 if cfg.quick else 20
        database = dbname(gw.database_url)
        with Sampler(gw.pid, extra_pids=lambda: self.pg.server_pids(database)) as sampler:
            time.sleep(idle_s)
            idle_end = time.time()
            idle_cores = Sampler.cores(sampler.samples, 0, idle_end) or 0.0
            idle_rss = sampler.max_rss(0, idle_end)
            started = time.time()
            ids, failures = asyncio.run(create_many(gw, key, n, concurrency=32))
            created = time.time()
            print(
                f"  created {len(ids):,} jobs in {created - started:.1f} s"
                f" ({len(ids) / (created - started):,.0f}/s), {failures} failed"
            )
            spy = None
            if cfg.profile:
                # Sampling pauses the process: at 50 Hz for 20 s, it barely shows in B3.
                spy = PySpy(gw.pid, cfg.out / "profile-B3-worker.txt", duration_s=20, rate=50)
                spy.__enter__()
                self.results.note("B3 ran with py-spy sampling the gateway for 20 s (--profile)")
            # Finalizing is the slow part when jobs pile up: allow ~0.06 s of it per job.
            deadline = created + duration + max(90.0, 0.06 * n)
            shown = 0.0
            with psycopg.connect(gw.database_url, autocommit=True) as conn:
                while time.time() < deadline:
                    counts = state_counts(conn)
                    if not any(k not in TERMINAL for k in counts):
                        break
                    if time.time() - shown >= 15:
                        shown = time.time()
                        print(f"  {shown - started:5.0f} s: {counts}", flush=True)
                    time.sleep(2)
            finished = time.time()
            if spy is not None:
                spy.__exit__(None, None, None)
                self._keep_profile("B3-worker", spy.out)
        tasks = {t["id"]: t for t in fake.stats()}
        with psycopg.connect(gw.database_url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT upstream_id, state, extract(epoch FROM completed_at) FROM jobs"
            ).fetchall()
        if not tasks:
            self.add(Row("B3", "jobs reaching upstream", "0", ok=False))
            return
        stats = B3Stats.of(rows, tasks, finished)
        creates = sorted(t["created"] for t in tasks.values())
        first_available = min(t["available"] for t in tasks.values())
        window = (creates[-1] + 2, first_available)
        label = f"{n:,} jobs waiting upstream ({window[1] - window[0]:.0f} s window)"
        if window[1] - window[0] < 5:
            # Submitting took longer than a task: no moment with every job just waiting.
            window = (started, finished)
            label = f"{n:,} jobs, whole run (submitting outlasted the tasks: no idle window)"
        cores = Sampler.cores(sampler.samples, *window)
        pg_cores = Sampler.cores(sampler.extra_samples, *window)
        total_cores = Sampler.cores(sampler.samples, started, finished)
        rss = sampler.max_rss(started, finished)
        self.add(
            Row(
                "B3",
                f"gateway CPU, {label}",
                f"{cores:.2f} cores" if cores is not None else "n/a",
                f"idle {idle_cores:.2f} cores",
                goal="< 1 core",
                ok=cores is not None and cores < 1,
            )
        )
        if pg_cores is not None and self.pg.server_pids():
            self.add(Row("B3", "PostgreSQL backends' CPU, same window", f"{pg_cores:.2f} cores"))
        if total_cores is not None:
            self.add(
                Row(
                    "B3",
                    "gateway CPU, whole run (create, submit, poll, finalize)",
                    f"{total_cores:.2f} cores over {finished - started:.0f} s",
                )
            )
        self.add(
            Row(
                "B3",
                "gateway RSS (max)",
                f"{rss / MIB:,.0f} MiB",
                f"idle {idle_rss / MIB:,.0f} MiB",
                goal="< 1024 MiB",
                ok=0 < rss < 1024 * MIB,
            )
        )
        self.add(
            Row(
                "B3",
                "jobs completed",
                f"{stats.completed:,} / {n:,}",
                goal="all",
                ok=stats.completed == n,
            )
        )
        # The goal is about noticing: the status read that first sees a task done, against
        # the interval in effect. Finalizing (download, probe, previews) is throughput-
        # bound work that follows, shown beside it.
        noticed99 = percentile(stats.noticed_excess, 99)
        self.add(
            Row(
                "B3",
                "p99 of (first read that saw it done - upstream done) - planned poll interval",
                f"{noticed99:.2f} s",
                goal="<= 1 s",
                ok=noticed99 <= 1.0 and len(stats.noticed_excess) == n,
            )
        )
        excess99 = percentile(stats.excess, 99)
        self.add(
            Row(
                "B3",
                "p99 of (completed_at - upstream done) - poll interval (with finalize)",
                f"{excess99:.2f} s",
                goal="<= 5 s",
                ok=excess99 <= 5.0,
            )
        )
        self._b3_finalize_rate(rows, sampler)
        for metric, values in (
            ("completed_at - upstream done", stats.detect),
            ("  of which: upstream done -> seen by a poll", stats.seen),
            ("  of which: seen -> completed (finalize)", stats.finalize),
            ("poll interval at completion: planned", stats.planned),
            ("poll interval at completion: actual gap between reads", stats.gaps),
        ):
            if values:
                self.add(
                    Row(
                        "B3",
                        f"{metric}, p50 / p99",
                        f"{percentile(values, 50):.2f} s / {percentile(values, 99):.2f} s",
                    )
                )
        if stats.read_rate:
            self.add(
                Row(
                    "B3",
                    "upstream status reads per job per minute while running (mean)",
                    f"{statistics.fmean(stats.read_rate):.1f}",
                )
            )
        span = max(creates[-1] - creates[0], 1e-3)
        self.add(
            Row(
                "B3",
                "jobs reaching upstream (submits/s)",
                fmt_rate(len(creates) / span),
                f"API creates {fmt_rate(len(ids) / (created - started))}",
            )
        )

    def _b3_finalize_rate(self, rows: list[Any], sampler: Sampler) -> None:
        """Jobs completed per second from the first completion to the last, and per core
        of the gateway's CPU over that window (everything it did meanwhile: polls,
        webhooks, previews; PostgreSQL's CPU beside it)."""
        done = sorted(float(r[2]) for r in rows if r[1] == "completed" and r[2] is not None)
        if len(done) < 2 or done[-1] - done[0] < 2:
            return
        # The samples are a second apart: the window is widened to hold two of them.
        start, end = done[0] - 1, done[-1] + 1
        cores = Sampler.cores(sampler.samples, start, end)
        pg_cores = Sampler.cores(sampler.extra_samples, start, end)
        if not cores:
            return
        rate = len(done) / (end - start)
        pg = f" + {pg_cores:.2f} PostgreSQL" if pg_cores is not None else ""
        self.add(
            Row(
                "B3",
                "finalize rate, first to last completion (per core of gateway CPU)",
                f"{rate / cores:.0f} jobs/s per core",
                f"{rate:.0f} jobs/s on {cores:.2f} cores{pg}",
            )
        )

    def _keep_profile(self, name: str, out: Path) -> None:
        if not out.exists():
            self.results.note(f"py-spy wrote no profile for {name}")
            return
        self.results.profiles.append(
            Profile(
                name=name,
                file=str(out.relative_to(REPO)),
                top_self=hot_spots(out, top=15),
                top_vidgate=hot_spots(out, top=20, only="vidgate/"),
            )
        )
        print(f"  profile {name}: {out}")


@dataclass(frozen=True)
class Cost:
    """One wrk run and its CPU milliseconds per request."""

    result: WrkResult
    gateway_ms: float
    pg_ms: float

    @property
    def total(self) -> float:
        return self.gateway_ms + self.pg_ms

    def describe(self) -> str:
        r = self.result
        return (
            f"{self.total:.2f} ms = {self.gateway_ms:.2f} + {self.pg_ms:.2f}"
            f" ({fmt_rate(r.rps)}, p99 {fmt_ms(r.p99_ms)})"
        )


@dataclass(frozen=True)
class B6Side:
    gw: Gateway
    key: ApiKey
    template: str  # a job of the key's tenant: the copies' model


@dataclass
class B3Stats:
    """Per job, from the fake's records and the jobs table (epoch seconds throughout)."""

    completed: int
    detect: list[float]  # completed_at - available upstream
    seen: list[float]  # first status read that saw it done - available
    finalize: list[float]  # completed_at - that read
    gaps: list[float]  # that read - the read (or create) before it: the interval in effect
    excess: list[float]  # detect - gap
    noticed_excess: list[float]  # seen - planned
    planned: list[float]  # the gateway's policy interval after the last read before done
    read_rate: list[float]  # status reads per minute while the task ran

    @classmethod
    def of(cls, rows: list[Any], tasks: dict[str, dict[str, Any]], finished: float) -> B3Stats:
        out = cls(0, [], [], [], [], [], [], [], [])
        for upstream_id, state, completed_at in rows:
            task = tasks.get(upstream_id)
            out.completed += state == "completed"
            if task is None:
                continue
            noticed, before = task["noticed"], task["last_read_before"]
            end = min(noticed or finished, task["available"])
            if end > task["created"]:
                out.read_rate.append(60 * task["reads"] / (end - task["created"]))
            if state != "completed" or completed_at is None:
                out.detect.append(float("inf"))
                out.excess.append(float("inf"))
                continue
            latency = float(completed_at) - task["available"]
            out.detect.append(latency)
            # The create is the first contact: without a read before, the interval runs
            # from there.
            gap = noticed - (before or task["created"]) if noticed else 0.0
            if noticed:
                out.seen.append(noticed - task["available"])
                # The interval the gateway meant to keep after the last read before the
                # task was done (its documented policy: no hint comes from this fake); a
                # read that came later than that was late. Without a read before, the
                # first read's own delay counts.
                planned = adaptive_poll_s(before - task["created"]) if before else gap
                out.planned.append(planned)
                out.noticed_excess.append(noticed - task["available"] - planned)
                out.finalize.append(float(completed_at) - noticed)
            out.gaps.append(gap)
            out.excess.append(latency - gap)
        return out


TERMINAL = ("completed", "failed", "cancelled")


# --- helpers ---------------------------------------------------------------------------


def create_video(
    gw: Gateway,
    key: ApiKey,
    body: dict[str, Any] | None = None,
    *,
    client: httpx.Client | None = None,
) -> str:
    own = client is None
    client = client or httpx.Client(timeout=30)
    try:
        response = client.post(
            f"{gw.base_url}/v1/videos",
            headers={"Authorization": f"Bearer {key.secret}"},
            json=body or SANDBOX_JSON,
        )
        if response.status_code != 200:
            raise RuntimeError(f"create failed: {response.status_code} {response.text}")
        return str(response.json()["id"])
    finally:
        if own:
            client.close()


async def create_many(
    gw: Gateway, key: ApiKey, n: int, *, concurrency: int
) -> tuple[list[str], int]:
    body = {"model": "bench-sora", "prompt": "bench: waiting upstream", "seconds": "4"}
    body["size"] = "1280x720"
    ids: list[str] = []
    failures = 0
    todo = iter(range(n))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=gw.base_url,
        headers={"Authorization": f"Bearer {key.secret}"},
        timeout=60,
        limits=limits,
    ) as client:

        async def worker() -> None:
            nonlocal failures
            for _ in todo:
                try:
                    response = await client.post("/v1/videos", json=body)
                except httpx.HTTPError:
                    failures += 1
                    continue
                if response.status_code == 200:
                    ids.append(response.json()["id"])
                else:
                    failures += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return ids, failures


def wait_completed(
    conn: psycopg.Connection[Any], job_id: str, *, timeout: float
) -> tuple[float, float, float]:
    """``(created_at, submitted_at, completed_at)`` in epoch seconds, by the database's clock."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = conn.execute(
            "SELECT state, extract(epoch FROM created_at), extract(epoch FROM submitted_at),"
            " extract(epoch FROM completed_at), error_code FROM jobs WHERE id = %s",
            (job_id,),
        ).fetchone()
        if row is not None and row[0] == "completed":
            return float(row[1]), float(row[2]), float(row[3])
        if row is not None and row[0] in TERMINAL:
            raise RuntimeError(f"job {job_id} ended {row[0]} ({row[4]})")
        time.sleep(0.01)
    raise RuntimeError(f"job {job_id} did not complete within {timeout} s")


def state_counts(conn: psycopg.Connection[Any]) -> dict[str, int]:
    rows = conn.execute("SELECT state, count(*) FROM jobs GROUP BY state").fetchall()
    return {str(state): int(count) for state, count in rows}


def write_job_paths(url: str, path: Path, *, limit: int) -> None:
    """``/v1/videos/<id>`` of up to ``limit`` random stored jobs, one per line."""
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT id FROM jobs ORDER BY random() LIMIT %s", (limit,)).fetchall()
    path.write_text("".join(f"/v1/videos/{row[0]}\n" for row in rows))


def trim_jobs(url: str, template: str) -> None:
    """Delete the jobs (and their queued steps) that creates added: all but the
    template and its copies (ids 'video_0...')."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "DELETE FROM procrastinate_jobs WHERE args->>'job_id' IN"
            " (SELECT id FROM jobs WHERE id NOT LIKE 'video_0%%' AND id <> %s)",
            (template,),
        )
        conn.execute("DELETE FROM jobs WHERE id NOT LIKE 'video_0%%' AND id <> %s", (template,))
        conn.execute("VACUUM ANALYZE jobs")


def count_jobs(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM jobs").fetchone()
    return int(row[0]) if row else 0


def _columns(conn: psycopg.Connection[Any], table: str) -> list[str]:
    rows = conn.execute(
        "SELECT column_name FROM information_schema.columns"
        " WHERE table_schema = 'public' AND table_name = %s ORDER BY ordinal_position",
        (table,),
    ).fetchall()
    return [str(r[0]) for r in rows]


def _copy_sql(table: str, columns: list[str], overrides: dict[str, str], source: str) -> str:
    names = ", ".join(f'"{c}"' for c in columns)
    values = ", ".join(overrides.get(c, f't."{c}"') for c in columns)
    return f'INSERT INTO "{table}" ({names}) SELECT {values} FROM {source}'


# Few enough to be a small table next to 10 k - 1 M; enough that 64 requests in flight
# rarely ask for the same id.
B6_BASE_JOBS = 1_000


def grow_jobs(url: str, template: str, key: ApiKey, size: int) -> int:
    """Add completed jobs of ``key``'s tenant (copies of ``template``, older ids and
    timestamps) until the jobs table holds ``size`` rows; then VACUUM ANALYZE it, as
    autovacuum would have on a table that grew over time."""
    with psycopg.connect(url, autocommit=True) as conn:
        have = int((conn.execute("SELECT count(*) FROM jobs").fetchone() or (0,))[0])
        missing = size - have
        if missing <= 0:
            return 0
        start = int(
            (conn.execute("SELECT count(*) FROM jobs WHERE id LIKE 'video_0%'").fetchone() or (0,))[
                0
            ]
        )
        overrides = {
            # Time-ordered ids start with the time; '0' sorts before any real one.
            "id": "'video_0' || substr(md5(g::text || '-bench'), 1, 25)",
            "tenant_id": "%(tenant)s",
            "api_key_id": "%(key)s",
            "state": "'completed'",
            "progress": "100",
            "created_at": "now() - make_interval(secs => g * 10)",
            "updated_at": "now() - make_interval(secs => g * 10 - 5)",
            "submitted_at": "now() - make_interval(secs => g * 10 - 1)",
            "completed_at": "now() - make_interval(secs => g * 10 - 5)",
            "upstream_id": "'sbx_bench_' || g",
            "cost": "0",
        }
        sql = _copy_sql(
            "jobs",
            _columns(conn, "jobs"),
            overrides,
            "jobs t, generate_series(%(lo)s::int, %(hi)s::int) g WHERE t.id = %(template)s",
        )
        step = 200_000
        for lo in range(start + 1, start + missing + 1, step):
            hi = min(start + missing, lo + step - 1)
            params = {"tenant": key.tenant_id, "key": key.id, "lo": lo, "hi": hi}
            conn.execute(sql.encode(), {**params, "template": template})
        conn.execute("VACUUM ANALYZE jobs")
    return missing


def sandbox_render_s(repeats: int = 5) -> float:
    """Median time the sandbox takes to render B5's clip: its "upstream" time."""
    from vidgate.media.render import ClipRequest, render_clip

    request = ClipRequest(
        width=426,
        height=240,
        fps=8,
        seconds=1,
        prompt=SANDBOX_FIELDS["prompt"],
        label="video_bench #1",
        seed=1,
    )
    times: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeats + 1):
            started = time.perf_counter()
            render_clip(request, Path(tmp) / f"{i}.mp4")
            if i:  # the first one warms imports and fonts
                times.append(time.perf_counter() - started)
    return statistics.median(times)


def make_big_mp4(path: Path, size: int) -> None:
    """A valid MP4 of exactly ``size`` bytes: a rendered clip, then a top-level ``free``
    box of random bytes (players and probes skip it)."""
    from vidgate.media.render import ClipRequest, render_clip

    small = path.with_suffix(".small.mp4")
    render_clip(
        ClipRequest(width=640, height=360, fps=24, seconds=4, prompt="B4", label="B4"), small
    )
    head = small.read_bytes()
    small.unlink()
    pad = size - len(head)
    if pad < 8:
        raise ValueError("size too small")
    with path.open("wb") as f:
        f.write(head)
        f.write(struct.pack(">I4s", pad, b"free"))
        remaining = pad - 8
        while remaining:
            chunk = os.urandom(min(remaining, 8 * MIB))
            f.write(chunk)
            remaining -= len(chunk)


def store_big_output(gw: Gateway, source: str, mp4: Path) -> tuple[str, Path]:
    """Put ``mp4`` into the gateway's blob store and make a completed job (a copy of
    ``source``) whose output it is. Returns the new job's id and the blob's path."""
    from vidgate.core.ids import new_id
    from vidgate.media.storage import LocalBlobStore

    store = LocalBlobStore(gw.data_dir / "media")
    blob = asyncio.run(store.put_file(mp4))
    job_id = new_id("video")
    with psycopg.connect(gw.database_url) as conn:
        conn.execute(
            "INSERT INTO blobs (sha256, size, content_type) VALUES (%s, %s, 'video/mp4')"
            " ON CONFLICT DO NOTHING",
            (blob.sha256, blob.size),
        )
        copy_job = _copy_sql(
            "jobs", _columns(conn, "jobs"), {"id": "%(new)s"}, "jobs t WHERE t.id = %(old)s"
        )
        conn.execute(copy_job.encode(), {"new": job_id, "old": source})
        conn.execute(
            _copy_sql(
                "job_outputs",
                _columns(conn, "job_outputs"),
                {"job_id": "%(new)s", "video_sha256": "%(sha)s", "size_bytes": "%(size)s"},
                "job_outputs t WHERE t.job_id = %(old)s AND t.index = 0",
            ).encode(),
            {"new": job_id, "old": source, "sha": blob.sha256, "size": blob.size},
        )
    return job_id, store.local_path(blob.sha256)


def check_content(url: str, headers: dict[str, str], size: int) -> None:
    """Both servers must answer 200 with the full length, and 206 to a Range, before
    their throughput means anything."""
    with httpx.Client(timeout=60) as client:
        with client.stream("GET", url, headers=headers) as response:
            length = int(response.headers.get("content-length", -1))
            if response.status_code != 200 or length != size:
                raise RuntimeError(f"{url}: {response.status_code}, length {length} != {size}")
        with client.stream("GET", url, headers={**headers, "Range": "bytes=0-99"}) as response:
            if response.status_code != 206:
                raise RuntimeError(f"{url}: Range answered {response.status_code}")


# B2's metered creates: the card of b3_catalogue, on a live key.
METERED_JSON = {"model": "bench-sora", "prompt": "bench: metered create", "seconds": "4"}


def b3_catalogue(base_url: str) -> dict[str, Any]:
    """The operator YAML of B3: one deployment on the fake, one model routed to it."""
    return {
        "deployments": {
            "bench-openai": {
                "provider": "openai_videos",
                "base_url": base_url,
                "credentials": {"api_key": FakeUpstream.API_KEY},
                "timeout_s": 60,
            }
        },
        "models": {
            "bench-sora": {
                # The rest is what its upstream model takes (docs/catalogue.md); a card
                # may not claim more, so these are sora-2's own.
                "owned_by": "bench",
                "durations": {"allowed": [4, 8, 12]},
                "resolutions": ["720p"],
                "aspect_ratios": ["16:9"],
                "default_seconds": 4,
                "pricing": {"default_per_second": 0.01},
                "deployments": [{"provider": "bench-openai", "upstream_model": "sora-2"}],
            }
        },
    }
