"""A vidgate cluster of real OS processes for tests/e2e/test_cluster.py: API replicas
(``vidgate serve --no-worker``) and workers (``vidgate worker``) on one database, and a
client that spreads creates over the replicas, failing over as a load balancer would.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import VIDGATE, ServerProcess, VidgateProcess
from tests.s3 import S3Endpoint

# What `vidgate worker` logs once it has started on its queues.
WORKER_READY = "worker.started"


def tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class WorkerProcess(VidgateProcess):
    """One ``vidgate worker`` process, its output in a log file beside the data dir."""

    name: str
    data_dir: Path
    env: dict[str, str]
    extra_args: tuple[str, ...] = ()
    proc: subprocess.Popen[str] | None = None
    log_path: Path | None = None

    def spawn(self) -> None:
        self.log_path = self.data_dir.parent / f"{self.name}.log"
        with self.log_path.open("a") as log:
            self.proc = subprocess.Popen(
                [*VIDGATE, "worker", "--data-dir", str(self.data_dir), *self.extra_args],
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
                # libpq names every connection of the process after it (pg_stat_activity).
                env={**os.environ, **self.env, "PGAPPNAME": self.name},
            )

    def wait_ready(self, deadline: float) -> None:
        assert self.proc is not None
        while WORKER_READY not in self.log():
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited early:\n{tail(self.log())}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} did not start:\n{tail(self.log())}")
            time.sleep(0.05)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def metrics_port(self) -> int:
        """The port of ``--metrics-port``, as started."""
        return int(self.extra_args[self.extra_args.index("--metrics-port") + 1])

    def client_ports(self, remote_ports: set[int]) -> set[int]:
        """Local ports of the process's connections to ``remote_ports`` on loopback: what
        tells its requests apart from other processes' at a server there."""
        try:
            conns = psutil.Process(self.pid).net_connections(kind="tcp")
        except psutil.NoSuchProcess:
            return set()
        return {c.laddr.port for c in conns if c.raddr and c.raddr.port in remote_ports}


@dataclass
class Cluster:
    apis: list[ServerProcess]
    workers: list[WorkerProcess]

    def start(self, timeout: float = 60) -> None:
        """Every process at once (they migrate the database once, under its lock)."""
        for api in self.apis:
            # Where ServerProcess.start (a restart) writes too.
            api.log_path = api.data_dir.parent / f"{api.data_dir.name}-server-{api.port}.log"
            with api.log_path.open("a") as log:
                api.proc = api._spawn(log)
        for worker in self.workers:
            worker.spawn()
        deadline = time.monotonic() + timeout
        for api in self.apis:
            api._wait_healthy(max(1.0, deadline - time.monotonic()))
        for worker in self.workers:
            worker.wait_ready(deadline)

    def stop(self) -> None:
        for proc in [*self.apis, *self.workers]:
            proc.stop()

    def logs(self, lines: int = 25) -> str:
        """The last lines of every process's log, for a failure message."""
        parts = [f"--- api {a.port} ---\n{tail(a.log(), lines)}" for a in self.apis]
        parts += [f"--- {w.name} ---\n{tail(w.log(), lines)}" for w in self.workers]
        return "\n".join(parts)


@contextmanager
def running(cluster: Cluster) -> Iterator[Cluster]:
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@dataclass
class Created:
    index: int
    job_id: str
    api: int  # the replica that answered
    tries: int  # connection failures and 503s before the answer
    at: float  # when (time.time())


@dataclass
class Balancer:
    """Round-robin over the replicas; a create that finds its replica gone (refused,
    reset, 503) goes to the next one with the same ``Idempotency-Key``, so a create the
    first replica committed before it went down is answered with that same job."""

    bases: list[str]
    key: str
    timeout_s: float = 20.0
    client: httpx.Client = field(
        default_factory=lambda: httpx.Client(
            timeout=10, limits=httpx.Limits(max_connections=64, max_keepalive_connections=32)
        )
    )
    failovers: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def create(self, index: int, path: str, body: dict[str, Any]) -> Created:
        headers = {"Authorization": f"Bearer {self.key}", "Idempotency-Key": f"cluster-{index}"}
        deadline = time.monotonic() + self.timeout_s
        tries = 0
        problems: list[str] = []
        while True:
            api = (index + tries) % len(self.bases)
            try:
                response = self.client.post(self.bases[api] + path, json=body, headers=headers)
                if response.status_code == 200:
                    job_id = str(response.json()["id"])
                    return Created(index, job_id, api, tries, time.time())
                if response.status_code != 503:
                    raise AssertionError(f"create {index} on replica {api}: {response.text}")
                problems.append(f"{api}: 503")
            except httpx.TransportError as exc:
                problems.append(f"{api}: {type(exc).__name__}")
            tries += 1
            with self._lock:
                self.failovers += 1
            if time.monotonic() > deadline:
                raise AssertionError(f"create {index} never accepted: {problems[-6:]}")
            if tries % len(self.bases) == 0:
                time.sleep(0.1)  # every replica refused: give them a moment

    def close(self) -> None:
        self.client.close()


class Load:
    """``count`` creates through ``balancer`` from a thread of their own, started at
    ``rate_per_s``, so the test can restart and kill processes while they arrive."""

    def __init__(
        self,
        balancer: Balancer,
        count: int,
        rate_per_s: float,
        request: Callable[[int], tuple[str, dict[str, Any]]],
        threads: int = 24,
        hold_at: int | None = None,
    ) -> None:
        self.balancer, self.count, self.rate, self.request = balancer, count, rate_per_s, request
        # Create ``hold_at`` and those after it wait for ``resume`` (a replica back from
        # a restart must still see creates, however long its restart took).
        self.hold_at = hold_at
        self.resume = threading.Event()
        self.accepted: list[Created] = []
        self.errors: list[BaseException] = []
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=threads)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.started_at = 0.0

    def start(self) -> Load:
        self.started_at = time.monotonic()
        self._thread.start()
        return self

    def _one(self, index: int) -> None:
        try:
            path, body = self.request(index)
            created = self.balancer.create(index, path, body)
        except BaseException as exc:
            with self._lock:
                self.errors.append(exc)
            raise
        with self._lock:
            self.accepted.append(created)

    def _run(self) -> None:
        delay = 0.0
        for i in range(self.count):
            if i == self.hold_at:
                held = time.monotonic()
                if not self.resume.wait(120):
                    self.errors.append(AssertionError(f"creates held at {i} never resumed"))
                    break
                delay = time.monotonic() - held
            wait = self.started_at + delay + i / self.rate - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            self._pool.submit(self._one, i)
        self._pool.shutdown(wait=True)

    def done(self) -> int:
        with self._lock:
            return len(self.accepted)

    def wait_for(self, accepted: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.done() < accepted:
            if self.errors:
                raise self.errors[0]
            if time.monotonic() > deadline:
                raise AssertionError(f"only {self.done()} of {accepted} creates accepted")
            time.sleep(0.02)

    def join(self, timeout: float) -> list[Created]:
        self._thread.join(timeout)
        if self.errors:
            raise self.errors[0]
        if self._thread.is_alive() or self.done() != self.count:
            raise AssertionError(f"{self.done()} of {self.count} creates accepted in time")
        return sorted(self.accepted, key=lambda c: c.index)


class PeakConnections:
    """The most connections the cluster held to its database at once, sampled, and
    how they were spread over the processes then (by ``application_name``)."""

    def __init__(self, database_url: str, every_s: float = 0.2) -> None:
        self.database_url, self.every_s = database_url, every_s
        self.peak = 0
        self.at_peak: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PeakConnections:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        query = (
            "SELECT application_name, count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            " GROUP BY application_name"
        )
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            while not self._stop.wait(self.every_s):
                counts = {str(name): int(n) for name, n in conn.execute(query).fetchall()}
                if sum(counts.values()) > self.peak:
                    self.peak, self.at_peak = sum(counts.values()), counts


class LocalStore:
    """The shared data directory's blob store, as the test sees it."""

    env: dict[str, str] = {}

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir

    def objects(self) -> Counter[str]:
        """Every stored object by name (its SHA-256), with how often it is there."""
        media = self.data_dir / "media"
        return Counter(
            p.name
            for p in media.rglob("*")
            if p.is_file() and ".tmp" not in p.relative_to(media).parts
        )

    def unfinished(self) -> list[str]:
        """What writes cut short left behind."""
        return [str(p) for p in (self.data_dir / "media" / ".tmp").glob("*")]


class S3Store:
    """A prefix of the S3 stand-in's bucket, as the test sees it."""

    def __init__(self, endpoint: S3Endpoint, prefix: str) -> None:
        self.endpoint, self.prefix = endpoint, prefix
        self.env = endpoint.env_for(prefix)

    def objects(self) -> Counter[str]:
        """The blobs under the prefix (``<prefix>/ab/<sha256>``) by name; not the
        store's own markers (``.partial/``, ``.ready``)."""
        keys = asyncio.run(self.endpoint.keys(f"{self.prefix}/"))
        names = (k.removeprefix(f"{self.prefix}/") for k in keys)
        return Counter(n.split("/")[-1] for n in names if not n.startswith("."))

    def unfinished(self) -> list[str]:
        """Partial-write markers and multipart uploads never completed or aborted."""
        return asyncio.run(self._unfinished())

    async def _unfinished(self) -> list[str]:
        async with self.endpoint.client() as s3:
            uploads = await s3.list_multipart_uploads(
                Bucket=self.endpoint.bucket, Prefix=f"{self.prefix}/"
            )
        markers = await self.endpoint.keys(f"{self.prefix}/.partial/")
        return markers + [u["Key"] for u in uploads.get("Uploads", [])]


# (metric sample name, its labels as sorted pairs) -> value
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str) -> Samples:
    """The samples of a Prometheus ``/metrics`` page."""
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200, f"GET {url}: {response.status_code}"
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


def by_label(samples: Samples, name: str, label: str, **labels: str) -> dict[str, float]:
    """``name``'s samples matching ``labels``, summed by the value of ``label``."""
    want = set(labels.items())
    out: dict[str, float] = {}
    for (n, ls), v in samples.items():
        found = dict(ls)
        if n == name and want <= set(ls) and label in found:
            out[found[label]] = out.get(found[label], 0.0) + v
    return out
