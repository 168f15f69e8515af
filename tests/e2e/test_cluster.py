"""The issue-14 acceptance run: two API replicas (``vidgate serve --no-worker``) and three
workers (``vidgate worker``), separate OS processes on one PostgreSQL and one store,
take 300 jobs submitted round-robin to both replicas against three fake providers of
different latencies; mid-run one replica is restarted and one worker is SIGKILLed while
it holds claimed work. Every job completes exactly once, each provider saw each job
become one task, each stored object exists once, every content link works from both
replicas, and the run's throughput is printed (docs/benchmarks.md, "Cluster").
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import psutil
import psycopg
import pytest
import yaml
from psycopg.rows import dict_row
from tests.cluster import (
    Balancer,
    Cluster,
    Created,
    Load,
    LocalStore,
    PeakConnections,
    S3Store,
    Samples,
    WorkerProcess,
    by_label,
    running,
    scrape,
    total,
)
from tests.conftest import ServerProcess, fast_env, free_port
from tests.debian_pg import DebianPostgres
from tests.fakes import kling, openai_videos, task_api
from tests.fakes.harness import FakeServer
from tests.fakes.timed import InFlight, Latency, TimedFake, timed
from tests.s3 import S3Endpoint

pytestmark = pytest.mark.slow

JOBS = 300
CREATES_PER_S = 30.0
TENANT = "cluster"
# When the choreography acts, in accepted creates.
RESTART_API_AT = 60
# Creates from this one on wait until the restarted replica is back.
RESUME_AFTER_RESTART = 180
KILL_WORKER_AT = 140
# Bounds of each wait (seconds), each failing with the processes' last log lines.
START_S = 45
HOLD_S = 10
ALL_DONE_S = 45
# The processes' leases (VIDGATE_STALLED_AFTER_S).
STALLED_AFTER_S = 4.0
# What each worker takes (`vidgate worker --queues`): the first, the one killed, does
# everything; the second submits and polls, the third finalizes (a media host), so
# every kind of work has a worker left after the kill.
WORKER_QUEUES = ("submit,poll,media,webhooks,cancel", "submit,poll,webhooks,cancel", "media")


@dataclass(frozen=True)
class Provider:
    """One fake upstream behind one deployment and one model card."""

    deployment: str
    module: Any
    cls_name: str
    latency: Latency
    download_path: str = r"/_files/([^/]+)/"

    @property
    def model(self) -> str:
        return f"cluster-{self.deployment}"


PROVIDERS = (
    # Quick: done 1-2 s after its create, and it hints vidgate to poll every 0.2 s.
    Provider(
        "openai",
        openai_videos,
        "FakeOpenAIVideos",
        Latency(create_s=(0.05, 0.3), run_s=(1.0, 2.0), download_s=(0.2, 0.5)),
        download_path=r"/v1/videos/([^/]+)/content$",
    ),
    Provider(
        "tasks",
        task_api,
        "FakeTaskApi",
        Latency(create_s=(0.1, 0.4), run_s=(2.0, 3.0), download_s=(0.3, 0.7)),
    ),
    # Slow: 3-4 s upstream, and a result that takes up to a second to start.
    Provider(
        "kling",
        kling,
        "FakeKling",
        Latency(create_s=(0.2, 0.5), run_s=(3.0, 4.0), download_s=(0.4, 0.9)),
    ),
)


def _card(provider: Provider) -> dict[str, Any]:
    seconds = provider.module.SECONDS
    return {
        "owned_by": "cluster-test",
        "durations": {"allowed": [seconds]},
        "resolutions": ["720p"],
        "aspect_ratios": ["16:9"],
        "fps": [24],
        "default_seconds": seconds,
        "default_resolution": "720p",
        "default_aspect_ratio": "16:9",
        "default_fps": 24,
        "pricing": {"default_per_second": 0.01},
        "deployments": [
            {"provider": provider.deployment, "upstream_model": provider.module.UPSTREAM_MODEL}
        ],
    }


def _request(index: int) -> tuple[str, dict[str, Any]]:
    """Create ``index``: the models in turn, and each shape for half of them."""
    provider = PROVIDERS[index % len(PROVIDERS)]
    seconds = provider.module.SECONDS
    common = {"model": provider.model, "prompt": f"cluster clip {index}"}
    if (index // len(PROVIDERS)) % 2:
        return "/v1/videos/generations", {**common, "duration": seconds}
    return "/v1/videos", {**common, "seconds": str(seconds)}


@dataclass
class Run:
    """What the choreography did, for the checks afterwards."""

    restart_window: tuple[float, float] = (0.0, 0.0)
    restart_down: float = 0.0
    killed_at: float = 0.0
    held: list[InFlight] | None = None
    # Jobs in a claimed state when the worker died: only these may be redone.
    claimed_at_kill: dict[str, str] | None = None


@pytest.fixture
def upstreams() -> Iterator[dict[str, tuple[Provider, TimedFake, FakeServer]]]:
    with ExitStack() as stack:
        found = {}
        for provider in PROVIDERS:
            fake = timed(
                getattr(provider.module, provider.cls_name),
                provider.latency,
                provider.download_path,
            )
            found[provider.deployment] = (provider, fake, stack.enter_context(FakeServer(fake)))
        yield found


@pytest.fixture
def store(s3_endpoint: S3Endpoint, tmp_path: Path) -> S3Store:
    """Where the cluster stores media: a prefix of its own in the S3 stand-in's bucket."""
    return S3Store(s3_endpoint, f"cluster-{tmp_path.name}")


def test_two_apis_three_workers_300_jobs_through_a_kill_and_a_restart(
    debian_pg: DebianPostgres,
    tmp_path: Path,
    store: S3Store,
    upstreams: dict[str, tuple[Provider, TimedFake, FakeServer]],
) -> None:
    deployments = {
        name: {**p.module.DEPLOYMENT, "base_url": srv.url + getattr(p.module, "BASE_PATH", "")}
        for name, (p, _, srv) in upstreams.items()
    }
    models_file = tmp_path / "models.yaml"
    models_file.write_text(
        yaml.safe_dump(
            {"deployments": deployments, "models": {p.model: _card(p) for p in PROVIDERS}}
        )
    )
    # An external PostgreSQL reached over TCP with a password, as in a deployment (its
    # max_connections, 300, holds five processes' pools: see docs/benchmarks.md).
    database_url = debian_pg.make_database()
    data_dir = tmp_path / "vidgate"
    env = fast_env(
        **store.env,
        VIDGATE_DATABASE_URL=database_url,
        VIDGATE_MODELS_FILE=str(models_file),
        # Three workers and two replicas share two cores: one media thread each.
        VIDGATE_MEDIA_THREADS="1",
        # Leases (a claimed submission or poll, a step's heartbeat) of 4 s, not the
        # 2 s of fast_env: on two busy cores a worker's event loop can stall for more
        # than a third of 2 s, and a lease that runs out under a live worker has its
        # job submitted again (the check below says so).
        VIDGATE_STALLED_AFTER_S=str(STALLED_AFTER_S),
        # The replica's restart and the end of the test stop processes with SIGTERM:
        # what is in flight gets this long, then goes back to the others.
        VIDGATE_SHUTDOWN_TIMEOUT_S="5",
        # Each process's database pools are sized from these (runtime.py): five
        # processes on defaults could hold more connections than a server takes.
        VIDGATE_WEBHOOK_CONCURRENCY="4",
        VIDGATE_CANCEL_CONCURRENCY="2",
        VIDGATE_MEDIA_CONCURRENCY="8",
    )
    cluster = Cluster(
        apis=[
            # PGAPPNAME: libpq names the process's connections (pg_stat_activity).
            ServerProcess(data_dir, {**env, "PGAPPNAME": f"api-{i}"}, extra_args=("--no-worker",))
            for i in range(2)
        ],
        workers=[
            WorkerProcess(
                f"worker-{i}",
                data_dir,
                env,
                ("--queues", queues, "--metrics-port", str(free_port())),
            )
            for i, queues in enumerate(WORKER_QUEUES)
        ],
    )
    started = time.monotonic()
    with PeakConnections(database_url) as connections, running(cluster):
        try:
            _run_and_check(cluster, upstreams, database_url, store, data_dir, started, connections)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n\nlast log lines:\n{cluster.logs()}") from None


def _run_and_check(
    cluster: Cluster,
    upstreams: dict[str, tuple[Provider, TimedFake, FakeServer]],
    database_url: str,
    store: S3Store,
    data_dir: Path,
    started: float,
    connections: PeakConnections,
) -> None:
    up_s = time.monotonic() - started
    key = cluster.apis[0].create_key("cluster", "--live", "--tenant", TENANT)
    bases = [api.base_url for api in cluster.apis]
    balancer = Balancer(bases, key)
    run = Run()
    load = Load(balancer, JOBS, CREATES_PER_S, _request, hold_at=RESUME_AFTER_RESTART).start()

    # A replica restarts while creates arrive: its share goes to the other meanwhile.
    load.wait_for(RESTART_API_AT, timeout=30)
    api = cluster.apis[1]
    stopped = time.time()
    api.stop()
    assert api.proc is not None and api.proc.returncode == 0, f"exit {api.proc.returncode}"
    run.restart_down = time.time() - stopped
    api.start(timeout=START_S)
    run.restart_window = (stopped, time.time())
    load.resume.set()

    # A worker dies while it holds work: a create or a download in flight at a fake.
    load.wait_for(KILL_WORKER_AT, timeout=30)
    victim = cluster.workers[0]
    fake_ports = {srv.port for _, _, srv in upstreams.values()}
    deadline = time.monotonic() + HOLD_S
    while True:
        ports = victim.client_ports(fake_ports)
        held = [f for _, fake, _ in upstreams.values() for f in fake.held_by(ports)]
        if held:
            break
        assert time.monotonic() < deadline, f"{victim.name} held no work for {HOLD_S}s"
        time.sleep(0.01)
    victim.kill()
    run.killed_at, run.held = time.time(), held
    # Its claims stay as they were until their leases run out (STALLED_AFTER_S).
    run.claimed_at_kill = _claimed(database_url)

    created = load.join(timeout=JOBS / CREATES_PER_S + 30)
    jobs = _wait_all_completed(database_url, timeout=ALL_DONE_S)
    finished = time.monotonic()
    # CPU seconds of each process so far (the restarted API's since its restart; the
    # killed worker's are gone with it), and upstream status reads per job.
    cpu = {
        name: round(sum(psutil.Process(pid).cpu_times()[:2]), 1)
        for name, pid in [
            *((f"api-{i}", a.proc.pid) for i, a in enumerate(cluster.apis) if a.proc),
            *((w.name, w.pid) for w in cluster.workers[1:]),
        ]
    }
    reads = {
        n: sum(t.polls for t in f.tasks.values()) / len(f.tasks)
        for n, (_, f, _) in upstreams.items()
    }

    _check_accepted_once(created, jobs, balancer, run)
    _check_upstream_once(jobs, upstreams, run)
    outputs = _check_stored_once(database_url, store, data_dir, jobs, upstreams)
    before = [scrape(f"{base}/metrics") for base in bases]
    served = _check_links_from_both(bases, key, jobs, outputs)
    _check_metrics(cluster, jobs, before, served)
    _check_worker_metrics(cluster.workers[1:], upstreams)
    balancer.close()
    _report(jobs, up_s, finished - started, run, connections)
    print(f"  CPU seconds: {cpu}")
    print("  status reads per job: " + ", ".join(f"{n} {r:.1f}" for n, r in reads.items()))


# --- the database's view --------------------------------------------------------------


def _rows(database_url: str, query: str, *args: Any) -> list[dict[str, Any]]:
    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
        return conn.execute(query, args).fetchall()  # type: ignore[arg-type]


def _claimed(database_url: str) -> dict[str, str]:
    rows = _rows(
        database_url,
        "SELECT id, state FROM jobs WHERE state IN ('submitting', 'finalizing')",
    )
    return {r["id"]: r["state"] for r in rows}


def _wait_all_completed(database_url: str, timeout: float) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + timeout
    tenant = "FROM jobs j JOIN tenants t ON t.id = j.tenant_id WHERE t.name = %s"
    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
        while True:
            rows = conn.execute(f"SELECT j.state, count(*) AS n {tenant} GROUP BY 1", (TENANT,))
            states = {r["state"]: int(r["n"]) for r in rows.fetchall()}
            if states.get("failed") or states.get("cancelled"):
                failed = conn.execute(
                    f"SELECT j.id, j.state, j.error_code, j.error_message {tenant}"
                    " AND j.state IN ('failed', 'cancelled') LIMIT 3",
                    (TENANT,),
                ).fetchall()
                raise AssertionError(f"jobs failed: {states}, e.g. {failed}")
            if states == {"completed": JOBS}:
                break
            assert time.monotonic() < deadline, f"not all completed in {timeout}s: {states}"
            time.sleep(0.2)
        rows = conn.execute(
            "SELECT j.id, j.state, j.model, j.provider, j.upstream_id, j.created_at,"
            f" j.completed_at {tenant}",
            (TENANT,),
        ).fetchall()
    return {r["id"]: r for r in rows}


# --- exactly once -----------------------------------------------------------------------


def _check_accepted_once(
    created: list[Created], jobs: dict[str, dict[str, Any]], balancer: Balancer, run: Run
) -> None:
    # Each of the client's 300 creates is one job, whichever replica took it and however
    # often it was sent.
    ids = [c.job_id for c in created]
    assert len(set(ids)) == JOBS, f"{JOBS - len(set(ids))} creates answered with another's job"
    assert set(ids) == set(jobs), "the database holds other jobs than those accepted"
    # The restart was felt: creates for the replica that was down went to the other.
    assert balancer.failovers > 0, "no create reached the replica while it restarted"
    back = [c for c in created if c.api == 1 and c.at > run.restart_window[1]]
    assert back, "the restarted replica took no create"


def _check_upstream_once(
    jobs: dict[str, dict[str, Any]],
    upstreams: dict[str, tuple[Provider, TimedFake, FakeServer]],
    run: Run,
) -> None:
    assert run.claimed_at_kill is not None and run.held is not None
    redone_submits = {j for j, state in run.claimed_at_kill.items() if state == "submitting"}
    redone_finals = {
        str(jobs[j]["upstream_id"])
        for j, state in run.claimed_at_kill.items()
        if state == "finalizing" and j in jobs
    }
    for name, (_, fake, _) in upstreams.items():
        routed = {j: r for j, r in jobs.items() if r["provider"] == name}
        assert routed, f"no job went to {name}"
        # One upstream task per job, and it is the job's own.
        assert fake.submissions == len(routed) == len(fake.tasks), (
            f"{name}: {fake.submissions} tasks accepted for {len(routed)} jobs"
        )
        assert {str(r["upstream_id"]) for r in routed.values()} == set(fake.tasks), name
        # Each job was sent (by its id), and sent again only where the dead worker held
        # its submission; the provider's idempotency made that the same task.
        assert set(fake.creates_by_job) == set(routed), f"{name}: creates by other ids"
        again = {j for j, n in fake.creates_by_job.items() if n > 1}
        assert again <= redone_submits, f"{name}: sent twice without a crash: {again}"
        # Each result was fetched, and fetched again only where finalize was cut short.
        assert set(fake.downloads_by_task) == set(fake.tasks), f"{name}: results not fetched"
        refetched = {t for t, n in fake.downloads_by_task.items() if n > 1}
        assert refetched <= redone_finals, f"{name}: fetched twice without a crash: {refetched}"
    # What the dead worker held was taken over and done.
    by_upstream = {str(r["upstream_id"]): j for j, r in jobs.items()}
    for flight in run.held:
        fake = upstreams[_provider_of(flight, jobs, by_upstream)][1]
        if flight.kind == "create":
            assert fake.creates_by_job[flight.key] >= 2, f"submission never resent: {flight}"
        else:
            assert fake.downloads_by_task[flight.key] >= 2, f"result never refetched: {flight}"


def _provider_of(
    flight: InFlight, jobs: dict[str, dict[str, Any]], by_upstream: dict[str, str]
) -> str:
    job = flight.key if flight.kind == "create" else by_upstream[flight.key]
    return str(jobs[job]["provider"])


# --- storage ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Output:
    job_id: str
    video: str
    thumbnail: str
    spritesheet: str


def _check_stored_once(
    database_url: str,
    store: S3Store,
    data_dir: Path,
    jobs: dict[str, dict[str, Any]],
    upstreams: dict[str, tuple[Provider, TimedFake, FakeServer]],
) -> dict[str, Output]:
    query = (
        "SELECT job_id, index, video_sha256, thumbnail_sha256, spritesheet_sha256"
        " FROM job_outputs WHERE job_id = ANY(%s)"
    )
    # Previews follow the completion (engine/previews.py: the media worker's step).
    deadline = time.monotonic() + 120
    while True:
        rows = _rows(database_url, query, list(jobs))
        if all(r["thumbnail_sha256"] and r["spritesheet_sha256"] for r in rows):
            break
        assert time.monotonic() < deadline, "previews not made within 120 s of completion"
        time.sleep(0.5)
    assert Counter(r["job_id"] for r in rows) == Counter(dict.fromkeys(jobs, 1))
    outputs = {
        r["job_id"]: Output(
            r["job_id"], r["video_sha256"], r["thumbnail_sha256"], r["spritesheet_sha256"]
        )
        for r in rows
    }
    # Each job's video is the bytes its upstream task made.
    shared: set[str] = set()
    for job_id, out in outputs.items():
        fake = upstreams[str(jobs[job_id]["provider"])][1]
        task = fake.tasks[str(jobs[job_id]["upstream_id"])]
        assert out.video == hashlib.sha256(fake.video_of(task)).hexdigest(), job_id
        if fake.is_shared(task.id):
            shared.add(job_id)
    assert len(shared) >= 2, "no two jobs share a video: content addressing is untested"
    videos = {o.video for o in outputs.values()}
    assert len(videos) == JOBS - len(shared) + 1
    # The store holds exactly what the jobs reference, each object once, and nothing a
    # killed write left behind.
    referenced = videos | {o.thumbnail for o in outputs.values()}
    referenced |= {o.spritesheet for o in outputs.values()}
    stored = store.objects()
    assert set(stored) == referenced, (
        f"missing {len(referenced - set(stored))}, extra {len(set(stored) - referenced)}"
    )
    assert max(stored.values()) == 1
    unfinished = store.unfinished()
    assert not unfinished, f"unfinished writes left behind: {unfinished[:5]}"
    # Each finalize's scratch directory went with its step (the killed ones' too).
    scratch = list((data_dir / "tmp").glob("*")) if (data_dir / "tmp").is_dir() else []
    assert not scratch, f"scratch left on local disk: {scratch[:5]}"
    # With S3 storage no finished video stays on a host's disk.
    on_disk = LocalStore(data_dir).objects()
    assert not on_disk, f"{len(on_disk)} blobs on the hosts' local disk"
    return outputs


# --- content links from both replicas -----------------------------------------------------


def _on(base: str, url: str) -> str:
    """``url`` (a signed link one replica made) pointed at the replica at ``base``."""
    parts, target = urlsplit(url), urlsplit(base)
    return urlunsplit((target.scheme, target.netloc, parts.path, parts.query, ""))


def _check_links_from_both(
    bases: list[str], key: str, jobs: dict[str, dict[str, Any]], outputs: dict[str, Output]
) -> dict[str, tuple[int, int]]:
    """Every job's video through both replicas: with the key on one, and through the
    signed link that one made on the other (each replica serves each way for half the
    jobs); the signed preview links of every tenth job likewise (the jobs' previews are
    a few shared objects). Returns the requests and body bytes each replica served on
    the content route, as the client saw them."""
    auth = {"Authorization": f"Bearer {key}"}
    client = httpx.Client(timeout=20, limits=httpx.Limits(max_connections=16))
    served: dict[str, list[int]] = {base: [0, 0] for base in bases}
    lock = threading.Lock()

    def sha_of(base: str, url: str, **kwargs: Any) -> str:
        response = client.get(url, **kwargs)
        assert response.status_code == 200, f"GET {url}: {response.status_code} {response.text}"
        with lock:
            served[base][0] += 1
            served[base][1] += len(response.content)
        return hashlib.sha256(response.content).hexdigest()

    def check(item: tuple[int, str]) -> None:
        index, job_id = item
        out = outputs[job_id]
        maker, other = bases[index % 2], bases[1 - index % 2]
        # The OpenAI shape's content with the key (only a completed job's: any other
        # is a 400 video_not_ready).
        assert sha_of(maker, f"{maker}/v1/videos/{job_id}/content", headers=auth) == out.video
        # The task shape's signed links, made by one replica, work on the other.
        generation = client.get(f"{maker}/v1/videos/generations/{job_id}", headers=auth).json()
        assert generation["status"] == "completed", generation
        data = generation["data"][0]
        assert sha_of(other, _on(other, data["url"])) == out.video
        if index % 10 == 0:
            assert sha_of(other, _on(other, data["thumbnail_url"])) == out.thumbnail
            assert sha_of(other, _on(other, data["spritesheet_url"])) == out.spritesheet

    with client, ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(check, enumerate(sorted(jobs))))
    return {base: (n, size) for base, (n, size) in served.items()}


# --- /metrics ----------------------------------------------------------------------------

CONTENT_ROUTE = "/v1/videos/{video_id}/content"


def _check_metrics(
    cluster: Cluster,
    jobs: dict[str, dict[str, Any]],
    before: list[Samples],
    served: dict[str, tuple[int, int]],
) -> None:
    """What both replicas report adds up to what happened: the cluster's jobs by final
    state and model (read from the database, so a killed worker loses none), none in
    flight; and each replica's own counters: the content requests the link check made
    there, and their bytes."""
    per_model = Counter(str(r["model"]) for r in jobs.values())
    for api, earlier in zip(cluster.apis, before, strict=True):
        # The cluster's numbers are cached for up to metrics_cache_s (2 s).
        deadline = time.monotonic() + 10
        while True:
            now = scrape(f"{api.base_url}/metrics")
            completed = by_label(now, "vidgate_jobs_total", "model", state="completed")
            ended = by_label(now, "vidgate_jobs_total", "state")
            in_flight = total(now, "vidgate_jobs_in_flight")
            if completed == per_model and ended.keys() <= {"completed"} and not in_flight:
                break
            assert time.monotonic() < deadline, (
                f"{api.base_url}/metrics: completed {completed} (expected {dict(per_model)}),"
                f" final states {ended}, in flight {in_flight}"
            )
            time.sleep(0.25)
        # The link check's requests on the content route, and the bytes they got.
        requests, body_bytes = served[api.base_url]
        route = {"route": CONTENT_ROUTE}
        count = "vidgate_http_request_duration_seconds_count"
        counted = total(now, count, **route) - total(earlier, count, **route)
        assert counted == requests, f"{api.base_url}: {counted} content requests, {requests} made"
        sent = total(now, "vidgate_http_response_bytes_total", **route) - total(
            earlier, "vidgate_http_response_bytes_total", **route
        )
        assert sent == body_bytes, f"{api.base_url}: {sent} bytes counted, {body_bytes} got"


def _check_worker_metrics(
    live: list[WorkerProcess], upstreams: dict[str, tuple[Provider, TimedFake, FakeServer]]
) -> None:
    """Each worker's own counters (``--metrics-port``): the live ones did the work of
    their queues and only that, and counted no more provider calls than the providers
    saw (each submit is at least one create there, each fetch at least one download).
    The killed worker's counters died with it; what the cluster did is in the
    replicas' database-backed counters."""
    calls = "vidgate_upstream_request_duration_seconds_count"
    pages = [scrape(f"http://127.0.0.1:{w.metrics_port}/metrics") for w in live]
    # The submitter and poller submitted and read; the media host fetched; neither
    # did the other's work.
    submitter, media = pages
    assert total(submitter, calls, operation="submit") > 0, "worker-1 submitted nothing"
    assert total(submitter, calls, operation="status") > 0, "worker-1 read no status"
    assert total(submitter, calls, operation="fetch") == 0, "worker-1 (no media) fetched"
    assert total(media, calls, operation="fetch") > 0, "worker-2 (media) fetched nothing"
    assert total(media, calls, operation="submit") == 0, "worker-2 (media only) submitted"
    for name, (_, fake, _) in upstreams.items():
        submits = sum(total(p, calls, deployment=name, operation="submit") for p in pages)
        fetches = sum(total(p, calls, deployment=name, operation="fetch") for p in pages)
        assert submits <= sum(fake.creates_by_job.values()), f"{name}: {submits} submits"
        assert fetches <= sum(fake.downloads_by_task.values()), f"{name}: {fetches} fetches"


# --- throughput ---------------------------------------------------------------------------


def _report(
    jobs: dict[str, dict[str, Any]],
    up_s: float,
    wall_s: float,
    run: Run,
    connections: PeakConnections,
) -> None:
    """The run's throughput, overall and per phase (from the jobs' own timestamps)."""
    created = sorted(r["created_at"].timestamp() for r in jobs.values())
    completed = sorted(r["completed_at"].timestamp() for r in jobs.values())
    span = completed[-1] - created[0]
    latencies = sorted((r["completed_at"] - r["created_at"]).total_seconds() for r in jobs.values())
    p50, p99 = latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.99) - 1]
    recovered = run.killed_at + STALLED_AFTER_S + 1
    phases = [
        ("before the restart", created[0], run.restart_window[0]),
        ("API restarting", run.restart_window[0], run.restart_window[1]),
        ("both APIs up", run.restart_window[1], run.killed_at),
        ("worker killed, leases running out", run.killed_at, recovered),
        ("two workers", recovered, completed[-1]),
    ]
    lines = []
    for name, begin, end in phases:
        length = max(end - begin, 1e-9)
        made = sum(begin <= t < end for t in created)
        done = sum(begin <= t < end for t in completed)
        lines.append(
            f"    {name:<34} {length:5.1f} s: {made:3d} created ({made / length:5.1f}/s),"
            f" {done:3d} completed ({done / length:5.1f}/s)"
        )
    print(
        f"\ncluster: {JOBS} jobs, 2 API + 3 worker processes, processes up in {up_s:.1f} s;"
        f" test run {wall_s:.1f} s\n"
        f"  first create -> last completion: {span:.1f} s = {JOBS / span:.1f} jobs/s;"
        f" create -> completed p50 {p50:.1f} s, p99 {p99:.1f} s\n"
        f"  creates offered at {CREATES_PER_S:.0f}/s; the API was down"
        f" {run.restart_down:.1f} s of a {run.restart_window[1] - run.restart_window[0]:.1f} s"
        f" restart; the killed worker held {len(run.held or [])} requests\n"
        + "\n".join(lines)
        + f"\n  PostgreSQL connections at most {connections.peak}: {connections.at_peak}"
    )
