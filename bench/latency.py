"""B7 and B8: what one user feels, against pass-through gateways on the same upstream.

B7: 50 jobs that finish upstream at the same instant, each polled by a client once a
second (the ``openai`` SDK's cadence; a client that honours ``openai-poll-after-ms`` as
the SDK does, and one that ignores it), which downloads the video once it reads
``completed``. The same rounds run through vidgate (``serve`` with an ``openai_videos``
deployment on bench/fake_upstream.py), through bench/passthrough.py (the least a
stateless gateway does) and, when it is installed, through LiteLLM's proxy, rounds
alternating between them.

B8: what a small stored video costs to serve, per request, against a status read of
the same job on the same gateway, and against the pass-throughs' content route.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import statistics
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg
import yaml

from bench.harness import (
    BENCH,
    PY,
    ApiKey,
    CpuMeter,
    FakeUpstream,
    Gateway,
    Managed,
    PySpy,
    clean_env,
    dbname,
    free_port,
    percentile,
    wait_port,
    wrk,
)
from bench.report import Row, fmt_ms, fmt_rate, fmt_ratio
from bench.suites import Bench, b3_catalogue

# The client's wait between status reads without a hint: the openai SDK's default.
CLIENT_POLL_S = 1.0
# The upstream task's run time in a round, from the round's start.
TASK_S = 10.0
LITELLM_KEY = "sk-litellm-bench"


class PassThroughGateway(Managed):
    """bench/passthrough.py on a free port, forwarding to the fake."""

    label = "minimal pass-through (bench/passthrough.py)"
    model = "sora-2"

    def __init__(self, work: Path, upstream: str) -> None:
        super().__init__("passthrough", work / "passthrough.log")
        self.port = free_port()
        self.upstream = upstream

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    headers: dict[str, str] = {}

    def start(self) -> None:
        argv = [PY, str(BENCH / "passthrough.py"), "--port", str(self.port)]
        argv += ["--upstream", self.upstream, "--api-key", FakeUpstream.API_KEY]
        self.spawn(argv, clean_env())
        wait_port(self.port, self.proc, 30, self.log_path)


class LiteLLMGateway(Managed):
    """LiteLLM's proxy (its own virtualenv: never a vidgate dependency), one model on
    the fake, a master key, no database."""

    model = "sora-2"

    def __init__(self, work: Path, binary: str, upstream: str) -> None:
        super().__init__("litellm", work / "litellm.log")
        self.port = free_port()
        self.binary = binary
        self.upstream = upstream
        self.config = work / "litellm.yaml"
        self.headers = {"Authorization": f"Bearer {LITELLM_KEY}"}
        self.version = "?"

    @property
    def label(self) -> str:
        return f"LiteLLM proxy {self.version}"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.config.write_text(
            yaml.safe_dump(
                {
                    "model_list": [
                        {
                            "model_name": self.model,
                            "litellm_params": {
                                "model": "openai/sora-2",
                                "api_base": self.upstream,
                                "api_key": FakeUpstream.API_KEY,
                            },
                        }
                    ],
                    "general_settings": {"master_key": LITELLM_KEY},
                }
            )
        )
        python = Path(self.binary).parent / "python"
        probe = [str(python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"]
        found = subprocess.run(probe, capture_output=True, text=True, timeout=60, check=False)
        self.version = found.stdout.strip() or "?"
        # No network here: the bundled model cost map, not a fetch that times out.
        env = clean_env(LITELLM_LOCAL_MODEL_COST_MAP="True", LITELLM_LOG="ERROR")
        argv = [self.binary, "--config", str(self.config), "--host", "127.0.0.1"]
        self.spawn([*argv, "--port", str(self.port), "--num_workers", "1"], env)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"litellm exited (rc={self.proc.returncode})")
            try:
                url = f"{self.base_url}/health/liveliness"
                if httpx.get(url, timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError("litellm did not start within 180 s")


@dataclass
class VidgateSide:
    gw: Gateway
    key: ApiKey
    label: str = "vidgate"
    model = "bench-sora"

    @property
    def base_url(self) -> str:
        return self.gw.base_url

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key.secret}"}


@dataclass
class JobSeen:
    """One client job: when it saw ``completed`` and when it had the video (epoch s)."""

    id: str
    saw_done: float | None = None
    had_bytes: float | None = None
    size: int = 0
    reads: int = 0
    error: str | None = None


@dataclass
class Round:
    gateway: str
    honour_hint: bool
    finish_at: float
    jobs: list[JobSeen]
    started: float
    ended: float
    cpu_s: float
    pg_cpu_s: float
    upstream_reads: list[int] = field(default_factory=list)
    completed_at: list[float] = field(default_factory=list)
    # The gateway's first status read that saw the task done, per task (epoch s).
    noticed: list[float] = field(default_factory=list)


async def one_round(
    base_url: str,
    headers: dict[str, str],
    model: str,
    n: int,
    *,
    honour_hint: bool,
    seed: int,
    timeout_s: float,
) -> list[JobSeen]:
    """Create ``n`` jobs at once, then poll each as its own user would: first after a
    random part of a second (users do not click in step), then every second (or as
    ``openai-poll-after-ms`` says), and download the video once it is ``completed``."""
    phases = random.Random(seed)
    form = {"model": model, "prompt": "bench: one of many", "seconds": "4", "size": "1280x720"}
    limits = httpx.Limits(max_connections=4 * n, max_keepalive_connections=4 * n)
    async with httpx.AsyncClient(
        base_url=base_url, headers=headers, timeout=60, limits=limits
    ) as client:

        async def create() -> str:
            # Multipart, like the SDK.
            files = {k: (None, v) for k, v in form.items()}
            response = await client.post("/v1/videos", files=files)
            response.raise_for_status()
            return str(response.json()["id"])

        async def get(path: str) -> httpx.Response:
            # The SDK retries a failed connection (twice, by default): a keep-alive
            # connection the server closed as the request went out is no failure.
            for attempt in range(3):
                try:
                    return await client.get(path)
                except httpx.TransportError:
                    if attempt == 2:
                        raise
            raise AssertionError("unreachable")

        ids = await asyncio.gather(*(create() for _ in range(n)))
        offsets = [phases.random() * CLIENT_POLL_S for _ in ids]
        deadline = time.time() + timeout_s

        async def follow(video_id: str, offset: float) -> JobSeen:
            seen = JobSeen(video_id)
            await asyncio.sleep(offset)
            while time.time() < deadline:
                response = await get(f"/v1/videos/{video_id}")
                seen.reads += 1
                status = response.json().get("status") if response.status_code == 200 else None
                if status == "completed":
                    seen.saw_done = time.time()
                    content = await get(f"/v1/videos/{video_id}/content")
                    if content.status_code != 200 or not content.content:
                        seen.error = f"content {content.status_code}"
                        return seen
                    seen.had_bytes = time.time()
                    seen.size = len(content.content)
                    return seen
                if status == "failed" or response.status_code >= 400:
                    seen.error = f"status {response.status_code} {status}"
                    return seen
                wait = CLIENT_POLL_S
                hint = response.headers.get("openai-poll-after-ms")
                if honour_hint and hint and hint.isdigit():
                    wait = int(hint) / 1000
                await asyncio.sleep(wait)
            seen.error = "timed out"
            return seen

        followed = (follow(i, o) for i, o in zip(ids, offsets, strict=True))
        return list(await asyncio.gather(*followed))


def _tree(pid: int) -> list[int]:
    try:
        proc = psutil.Process(pid)
        return [pid, *(c.pid for c in proc.children(recursive=True))]
    except psutil.Error:
        return [pid]


class LatencyBench:
    """B7 and B8 on one fake upstream, vidgate and the pass-throughs started once."""

    def __init__(
        self,
        bench: Bench,
        *,
        litellm: str | None,
        rounds: int,
        jobs: int,
        baseline_python: str | None = None,
    ) -> None:
        self.bench = bench
        self.cfg = bench.cfg
        self.litellm = litellm
        self.baseline_python = baseline_python
        self.rounds = rounds
        self.jobs = jobs
        # A job of each gateway that completed, for B8.
        self.last_ids: dict[str, str] = {}
        self.profiled = False

    def run(self, want: set[str]) -> None:
        cfg = self.cfg
        work = cfg.work / "b7"
        work.mkdir(parents=True, exist_ok=True)
        fake = FakeUpstream(work / "fake-upstream.log", duration_s=TASK_S, poll_after_ms=None)
        fake.start()
        models_file = work / "models.yaml"
        models_file.write_text(yaml.safe_dump(b3_catalogue(fake.base_url)))
        env = {"VIDGATE_MODELS_FILE": str(models_file)}
        gw = self.bench.gateway("b7", worker=True, env=env)
        vidgates = [VidgateSide(gw, gw.create_key("bench-live", live=True, tenant="bench"))]
        sides: list[Any] = []
        started: list[Managed] = [fake, gw]
        try:
            if self.baseline_python:
                # The same rounds through another checkout's vidgate: before and after.
                base = self.bench.gateway(
                    "b7-baseline", worker=True, env=env, python=self.baseline_python
                )
                started.append(base)
                key = base.create_key("bench-live", live=True, tenant="bench")
                checkout = Path(self.baseline_python).parent.parent.parent
                vidgates.append(VidgateSide(base, key, f"vidgate baseline ({checkout.name})"))
            minimal = PassThroughGateway(work, fake.base_url)
            minimal.start()
            started.append(minimal)
            sides.append(minimal)
            if self.litellm:
                print("* starting LiteLLM's proxy (about a minute)")
                lite = LiteLLMGateway(work, self.litellm, fake.base_url)
                started.append(lite)
                lite.start()
                sides.append(lite)
            else:
                self.bench.results.note(
                    "B7/B8: LiteLLM's proxy not found (--litellm PATH, or `litellm` on PATH):"
                    " compared with the minimal pass-through only"
                )
            if "B7" in want:
                self.b7(fake, vidgates, sides)
            if "B8" in want:
                self.b8(vidgates[0], sides)
        finally:
            for proc in reversed(started):
                proc.stop()
            for side in vidgates:
                self.bench.pg.drop_database(side.gw.database_url)

    # --- B7 -------------------------------------------------------------------------

    def b7(self, fake: FakeUpstream, vidgates: list[VidgateSide], sides: Sequence[Any]) -> None:
        """``sides``: the pass-throughs, the minimal one first (the reference)."""
        n = self.jobs
        print(f"* B7: {n} jobs finishing upstream together, {self.rounds} round(s) per gateway")
        # Rounds alternate between the gateways, so that all see the same machine; round
        # r of each uses the same client phases.
        plan: list[tuple[int, Any, bool]] = []
        for r in range(self.rounds):
            for vidgate in vidgates:
                plan += [(r, vidgate, True), (r, vidgate, False)]
            plan += [(r, side, False) for side in sides]
        done: dict[tuple[str, bool], list[Round]] = {}
        for r, side, hint in plan:
            result = self._round(fake, side, hint, seed=r + 1)
            self.last_ids[side.label] = result.jobs[0].id
            done.setdefault((side.label, hint), []).append(result)
            print(
                f"  {side.label}{' (hint)' if hint else ''}: round {r + 1}: after upstream"
                f" done, p50/p99 first read that saw it {_pair(_after(result, 'noticed'))},"
                f" completed {_pair(_after(result, 'completed'))},"
                f" client saw {_pair(_after(result, 'saw'))};"
                f" reads/job {statistics.fmean(result.upstream_reads or [0]):.1f}",
                flush=True,
            )
        self._b7_rows(done, sides[0].label)

    def _round(self, fake: FakeUpstream, side: Any, honour_hint: bool, *, seed: int) -> Round:
        n = self.jobs
        time.sleep(1.0)  # the last round's stragglers settle
        finish_at = time.time() + TASK_S
        httpx.post(f"{fake.base_url.removesuffix('/v1')}/_finish_at", json={"at": finish_at})
        gw_pid = side.gw.pid if isinstance(side, VidgateSide) else side.pid
        database = dbname(side.gw.database_url) if isinstance(side, VidgateSide) else None

        def pg_pids() -> list[int]:
            return self.bench.pg.server_pids(database) if database else []

        spy = None
        if self.cfg.profile and isinstance(side, VidgateSide) and not self.profiled:
            # The first vidgate round, from the creates to the last download.
            self.profiled = True
            spy = PySpy(gw_pid, self.cfg.out / "profile-B7-round.txt", int(TASK_S) + 8, rate=200)
            spy.__enter__()
        started = time.time()
        with CpuMeter(lambda: _tree(gw_pid)) as cpu, CpuMeter(pg_pids) as pg:
            jobs = asyncio.run(
                one_round(
                    side.base_url,
                    side.headers,
                    side.model,
                    n,
                    honour_hint=honour_hint,
                    seed=seed,
                    timeout_s=TASK_S + 60,
                )
            )
        ended = time.time()
        if spy is not None:
            spy.__exit__(None, None, None)
            self.bench._keep_profile("B7-round", spy.out)
        httpx.post(f"{fake.base_url.removesuffix('/v1')}/_finish_at", json={"at": None})
        result = Round(
            side.label, honour_hint, finish_at, jobs, started, ended, cpu.seconds, pg.seconds
        )
        tasks = [t for t in fake.stats() if started <= t["created"] <= ended]
        result.upstream_reads = [int(t["reads"]) for t in tasks]
        if isinstance(side, VidgateSide):
            with psycopg.connect(side.gw.database_url, autocommit=True) as conn:
                rows = conn.execute(
                    "SELECT extract(epoch FROM completed_at) FROM jobs"
                    " WHERE id = ANY(%s) AND state = 'completed'",
                    ([j.id for j in jobs],),
                ).fetchall()
            result.completed_at = [float(r[0]) for r in rows]
            result.noticed = [float(t["noticed"]) for t in tasks if t["noticed"] is not None]
        return result

    def _b7_rows(self, done: dict[tuple[str, bool], list[Round]], pass_label: str) -> None:
        add = self.bench.add
        base = done[(pass_label, False)]
        base_bytes = [v for r in base for v in _after(r, "bytes")]
        for (label, hint), rounds in done.items():
            name = f"{label}{', client honours openai-poll-after-ms' if hint else ''}"
            errors = [j.error for r in rounds for j in r.jobs if j.error]
            if errors:
                self.bench.results.note(f"B7 {name}: {len(errors)} jobs failed: {errors[:3]}")
            completed = [v for r in rounds for v in _after(r, "completed")]
            noticed = [v for r in rounds for v in _after(r, "noticed")]
            saw = [v for r in rounds for v in _after(r, "saw")]
            had = [v for r in rounds for v in _after(r, "bytes")]
            reads = [v for r in rounds for v in r.upstream_reads]
            jobs = sum(len(r.jobs) for r in rounds)
            cpu_ms = 1000 * sum(r.cpu_s for r in rounds) / max(jobs, 1)
            pg_ms = 1000 * sum(r.pg_cpu_s for r in rounds) / max(jobs, 1)
            if completed:
                p99 = percentile(completed, 99)
                add(
                    Row(
                        "B7",
                        f"{name}: upstream done -> completed (downloadable), p50 / p99",
                        f"{percentile(completed, 50):.2f} s / {p99:.2f} s",
                        goal="p99 <= 0.5 s",
                        ok=p99 <= 0.5 and len(completed) == jobs,
                    )
                )
            if noticed:
                add(
                    Row(
                        "B7",
                        f"{name}:   of which upstream done -> first read that saw it",
                        _pair(noticed),
                    )
                )
            add(Row("B7", f"{name}: upstream done -> client saw completed, p50 / p99", _pair(saw)))
            ok = None
            if label != pass_label and not hint and had:
                ok = percentile(had, 99) <= percentile(base_bytes, 99) and len(had) == jobs
            add(
                Row(
                    "B7",
                    f"{name}: upstream done -> client had the video, p50 / p99",
                    _pair(had),
                    f"{pass_label}: {_pair(base_bytes)}" if label != pass_label else "",
                    goal="p99 <= pass-through's" if ok is not None else "",
                    ok=ok,
                )
            )
            add(
                Row(
                    "B7",
                    f"{name}: upstream status reads per job (mean)",
                    f"{statistics.fmean(reads):.1f}" if reads else "n/a",
                )
            )
            pg = f" (PostgreSQL {pg_ms:.1f} ms)" if pg_ms else ""
            add(Row("B7", f"{name}: gateway CPU per job", f"{cpu_ms:.1f} ms{pg}"))

    # --- B8 -------------------------------------------------------------------------

    def b8(self, vidgate: VidgateSide, sides: Sequence[Any]) -> None:
        cfg = self.cfg
        target = self.last_ids.get(vidgate.label) or self._completed_job(vidgate)
        status_url = f"{vidgate.base_url}/v1/videos/{target}"
        content_url = f"{status_url}/content"
        signed = httpx.get(
            f"{vidgate.base_url}/v1/videos/generations/{target}", headers=vidgate.headers
        ).json()["data"][0]["url"]
        size = len(httpx.get(content_url, headers=vidgate.headers).content)
        print(f"* B8: small content ({size:,} bytes) against a status read, 64 connections")
        measured: dict[str, tuple[float, float, float]] = {}
        for name, url, headers in (
            ("status read", status_url, vidgate.headers),
            ("content, API key", content_url, vidgate.headers),
            ("content, signed link", signed, {}),
        ):
            self.bench.warm(url, headers=headers)
            result, cpu_ms, pg_ms = self.bench.load_cpu(
                vidgate.gw.pid,
                url,
                database=dbname(vidgate.gw.database_url),
                connections=cfg.connections,
                duration_s=cfg.measure_s,
                headers=headers,
            )
            measured[name] = (result.rps, cpu_ms, pg_ms)
            if name != "status read":
                self.bench.profiled(
                    f"B8-{name.split()[-1]}",
                    vidgate.gw.pid,
                    lambda url=url, headers=headers: wrk(
                        url, connections=cfg.connections, duration_s=cfg.measure_s, headers=headers
                    ),
                )
        status_cpu = measured["status read"][1]
        for name, (rps, cpu_ms, pg_ms) in measured.items():
            ratio = cpu_ms / status_cpu if status_cpu else float("nan")
            goal = "<= 2 x status read" if name != "status read" else ""
            self.bench.add(
                Row(
                    "B8",
                    f"vidgate {name} of a {size:,}-byte video: CPU per request (PostgreSQL)",
                    f"{cpu_ms:.2f} ms ({pg_ms:.2f} ms), {fmt_rate(rps)}",
                    f"status read {status_cpu:.2f} ms" if goal else "",
                    fmt_ratio(ratio) if goal else "",
                    goal,
                    ratio <= 2 if goal else None,
                )
            )
        for side in sides:
            # The pass-throughs fetch the video from the fake on every request.
            video_id = self._completed_job(side)
            url = f"{side.base_url}/v1/videos/{video_id}/content"
            self.bench.warm(url, headers=side.headers)
            result, cpu_ms, _ = self.bench.load_cpu(
                side.pid,
                url,
                connections=cfg.connections,
                duration_s=cfg.measure_s,
                headers=side.headers,
            )
            vid_rps = measured["content, API key"][0]
            self.bench.add(
                Row(
                    "B8",
                    f"{side.label}: content of the same video, CPU per request",
                    f"{cpu_ms:.2f} ms, {fmt_rate(result.rps)}, p99 {fmt_ms(result.p99_ms)}",
                    f"vidgate {fmt_rate(vid_rps)}",
                    fmt_ratio(vid_rps / result.rps) if result.rps else "",
                )
            )

    def _completed_job(self, side: Any) -> str:
        """A job of ``side`` that completed: one of B7's, or a new one."""
        if side.label in self.last_ids:
            return self.last_ids[side.label]
        ids = asyncio.run(
            one_round(
                side.base_url, side.headers, side.model, 1, honour_hint=False, seed=0, timeout_s=30
            )
        )
        return ids[0].id


def _after(r: Round, what: str) -> list[float]:
    """Seconds after the upstream finish: of the gateway's completion, of its first read
    that saw the task done, of the client seeing it, of the client holding the bytes."""
    if what == "completed":
        return [t - r.finish_at for t in r.completed_at]
    if what == "noticed":
        return [t - r.finish_at for t in r.noticed]
    times = [j.saw_done if what == "saw" else j.had_bytes for j in r.jobs]
    return [t - r.finish_at for t in times if t is not None]


def _pair(values: list[float]) -> str:
    if not values:
        return "n/a"
    return f"{percentile(values, 50):.2f} s / {percentile(values, 99):.2f} s"


def find_litellm(explicit: str | None) -> str | None:
    """The ``litellm`` command: the one given, else on PATH."""
    if explicit:
        return explicit if Path(explicit).exists() else None
    return shutil.which("litellm")
