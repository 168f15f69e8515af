"""Every provider, end to end through a real vidgate server, against its fake.

One gateway process serves all providers; each provider has two fake deployments
(``-a`` preferred, ``-b`` as fallback) behind model ``c-<provider>``, and a model
``c-<provider>-solo`` with only ``-a``. Each scenario runs on every provider at once, so
the suite costs about one provider's time.
"""

from __future__ import annotations

import base64
import importlib
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import ServerProcess, fast_env, make_database, png_bytes, probe
from tests.fakes.harness import FakeServer, FakeUpstream
from vidgate.core.catalog import builtin_upstreams, canonical_resolution
from vidgate.core.spec import dimensions

PROVIDERS = [
    "openai_videos",
    "task_api",
    "seedance",
    "dashscope",
    "luma",
    "runway",
    "vertex",
    "gemini",
    "replicate",
    "fal",
    "kling",
    "minimax",
]


@dataclass
class Case:
    name: str
    module: ModuleType
    a: FakeUpstream
    b: FakeUpstream
    server_a: FakeServer
    server_b: FakeServer

    @property
    def model(self) -> str:
        return f"c-{self.name}"

    @property
    def solo(self) -> str:
        return f"c-{self.name}-solo"

    @property
    def native(self) -> str:
        return f"c-{self.name}-native"

    def body(self, **extra: Any) -> dict[str, Any]:
        return {
            "prompt": f"{self.name} test",
            "duration": self.module.SECONDS,
            "size": self.module.SIZE,
            **extra,
        }

    def reset(self) -> None:
        for fake in (self.a, self.b):
            fake.fail_tasks = None
            fake.expire_urls = False
            fake.expire_first_download = False
            fake.fail_all_creates(None)
            fake.polls_to_finish = 2


def _fake_class(module: ModuleType) -> type[FakeUpstream]:
    classes = [
        v
        for v in vars(module).values()
        if isinstance(v, type)
        and issubclass(v, FakeUpstream)
        and v is not FakeUpstream
        and v.__module__ == module.__name__
    ]
    assert len(classes) == 1, f"{module.__name__} must define one FakeUpstream subclass"
    return classes[0]


def _card(case_module: ModuleType, deployments: list[dict[str, Any]]) -> dict[str, Any]:
    width, height = (int(x) for x in case_module.SIZE.split("x"))
    short = min(width, height)
    resolution = {
        240: "240p",
        360: "360p",
        480: "480p",
        540: "540p",
        720: "720p",
        768: "768p",
        1080: "1080p",
        2160: "4K",
    }.get(short, f"{short}p")
    resolution = canonical_resolution(resolution) or resolution
    ratios = ["16:9", "9:16", "1:1", "4:3", "3:4", "21:9", "9:21"]
    ratio = next(r for r in ratios if dimensions(resolution, r) == (width, height))
    # The kinds are what the upstream model takes (docs/catalogue.md); a card may not
    # claim more, so it offers the fake's one duration.
    return {
        "owned_by": "contract-tests",
        "durations": {"allowed": [case_module.SECONDS]},
        "resolutions": [resolution],
        "aspect_ratios": [ratio],
        "fps": [24],
        "default_seconds": case_module.SECONDS,
        "default_resolution": resolution,
        "default_aspect_ratio": ratio,
        "default_fps": 24,
        "pricing": {"default_per_second": 0.01},
        "deployments": deployments,
    }


@pytest.fixture(scope="module")
def cases() -> Iterator[dict[str, Case]]:
    with ExitStack() as stack:
        found: dict[str, Case] = {}
        for name in PROVIDERS:
            module = importlib.import_module(f"tests.fakes.{name}")
            cls = _fake_class(module)
            a, b = cls(), cls()
            found[name] = Case(
                name,
                module,
                a,
                b,
                stack.enter_context(FakeServer(a)),
                stack.enter_context(FakeServer(b)),
            )
        yield found


@pytest.fixture(scope="module")
def gateway(
    cases: dict[str, Case], pg_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServerProcess, str]]:
    deployments: dict[str, Any] = {}
    models: dict[str, Any] = {}
    for case in cases.values():
        module = case.module
        base_path = getattr(module, "BASE_PATH", "")
        for suffix, server in (("a", case.server_a), ("b", case.server_b)):
            deployments[f"{case.name}-{suffix}"] = {
                **module.DEPLOYMENT,
                "base_url": server.url + base_path,
            }
        ref = {"upstream_model": module.UPSTREAM_MODEL}
        models[case.model] = _card(
            module,
            [
                {"provider": f"{case.name}-a", "priority": 10, **ref},
                {"provider": f"{case.name}-b", **ref},
            ],
        )
        models[case.solo] = _card(module, [{"provider": f"{case.name}-a", **ref}])
        # A card that states nothing but its deployment: its limits are what the
        # upstream model takes (docs/catalogue.md, "Limits from the deployments").
        models[case.native] = {"deployments": [{"provider": f"{case.name}-a", **ref}]}
    root = tmp_path_factory.mktemp("contract")
    models_file = root / "models.yaml"
    models_file.write_text(yaml.safe_dump({"deployments": deployments, "models": models}))
    srv = ServerProcess(
        data_dir=root / "data",
        env=fast_env(
            VIDGATE_DATABASE_URL=make_database(pg_server),
            VIDGATE_MODELS_FILE=str(models_file),
            VIDGATE_WORKER_CONCURRENCY="16",
        ),
    )
    srv.env["VIDGATE_PUBLIC_BASE_URL"] = srv.base_url
    srv.start()
    try:
        yield srv, srv.create_key("contract", "--live", "--tenant", "contract")
    finally:
        srv.stop()


@pytest.fixture(autouse=True)
def _clean(cases: dict[str, Case]) -> Iterator[None]:
    for case in cases.values():
        case.reset()
    yield
    for case in cases.values():
        case.reset()


def _create(gateway: tuple[ServerProcess, str], model: str, body: dict[str, Any]) -> str:
    srv, key = gateway
    response = httpx.post(
        f"{srv.base_url}/v1/videos/generations",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": model, **body},
        timeout=30,
    )
    assert response.status_code == 200, f"{model}: {response.text}"
    return str(response.json()["id"])


def _get(gateway: tuple[ServerProcess, str], job_id: str) -> dict[str, Any]:
    srv, key = gateway
    body: dict[str, Any] = httpx.get(
        f"{srv.base_url}/v1/videos/generations/{job_id}",
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    ).json()
    return body


def _wait_all(
    gateway: tuple[ServerProcess, str],
    jobs: dict[str, str],
    timeout: float = 60,
    until: tuple[str, ...] = ("completed", "failed"),
) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + timeout
    done: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline and len(done) < len(jobs):
        for name, job_id in jobs.items():
            if name not in done:
                body = _get(gateway, job_id)
                if body["status"] in until:
                    done[name] = body
        time.sleep(0.25)
    missing = sorted(set(jobs) - set(done))
    assert not missing, f"not finished in {timeout}s: {missing}\n{gateway[0].log()[-3000:]}"
    return done


def test_text_to_video_is_stored_and_probed(
    cases: dict[str, Case], gateway: tuple[ServerProcess, str], tmp_path: Path
) -> None:
    jobs = {name: _create(gateway, case.solo, case.body()) for name, case in cases.items()}
    for name, body in _wait_all(gateway, jobs).items():
        assert body["status"] == "completed", f"{name}: {body['error']}"
        video = httpx.get(body["data"][0]["url"], timeout=30)
        assert video.status_code == 200, name
        info = probe(video.content, tmp_path, f"{name}.mp4")
        assert info.codec == "h264" and (info.width, info.height) == (160, 96), name
        assert cases[name].a.submissions == 1 and cases[name].b.submissions == 0, name
    # The job keeps the upstream's own task id, nothing packed into it: what else an
    # adapter needs to reach the task is its state (jobs.upstream_state).
    import psycopg

    with psycopg.connect(gateway[0].env["VIDGATE_DATABASE_URL"]) as conn:
        rows = conn.execute(
            "SELECT id, upstream_id FROM jobs WHERE id = ANY(%s)", (list(jobs.values()),)
        ).fetchall()
    stored = {job_id: str(upstream_id) for job_id, upstream_id in rows}
    for name, job_id in jobs.items():
        upstream_id = stored[job_id]
        # Google names an operation by its full resource name, which ends in its id.
        own = upstream_id.rsplit("/operations/", 1)[-1]
        assert own in cases[name].a.tasks, f"{name}: {upstream_id!r} is not the upstream's id"


def test_image_to_video(cases: dict[str, Case], gateway: tuple[ServerProcess, str]) -> None:
    image = "data:image/png;base64," + base64.b64encode(png_bytes(640, 360)).decode()
    able = {n: c for n, c in cases.items() if c.module.SUPPORTS_IMAGE}
    jobs = {
        name: _create(gateway, case.solo, case.body(image=image)) for name, case in able.items()
    }
    for name, body in _wait_all(gateway, jobs).items():
        assert body["status"] == "completed", f"{name}: {body['error']}"


def _heal(gateway: tuple[ServerProcess, str]) -> None:
    """Close the breakers a scenario's failures counted toward, so that later scenarios
    route as before."""
    import psycopg

    with psycopg.connect(gateway[0].env["VIDGATE_DATABASE_URL"], autocommit=True) as conn:
        conn.execute(
            "UPDATE deployment_health SET consecutive_failures = 0, open_until = NULL,"
            " unhealthy = false"
        )


def test_outside_native_limits_is_refused_at_create_naming_the_parameter(
    cases: dict[str, Case], gateway: tuple[ServerProcess, str]
) -> None:
    """Each adapter: a duration or frame rate its upstream model does not take is a 400
    at create that names the parameter, never a job that fails upstream."""
    srv, key = gateway
    table = builtin_upstreams()
    checked: list[str] = []
    for case in cases.values():
        caps = table.lookup(case.name, case.module.UPSTREAM_MODEL)
        assert caps is not None, case.name
        wrong: list[tuple[str, dict[str, Any]]] = []
        if caps.durations is not None:
            # The task shape names a duration refusal as the OpenAI shape does
            # (tests/e2e/test_bad_input.py).
            wrong.append(("seconds", {"duration": caps.durations.maximum + 1}))
        if caps.fps is not None and 60 not in caps.fps:
            wrong.append(("fps", {"fps": 60}))
        for param, extra in wrong:
            submitted = (case.a.submissions, case.b.submissions)
            response = httpx.post(
                f"{srv.base_url}/v1/videos/generations",
                headers={"Authorization": f"Bearer {key}"},
                json={"model": case.native, "prompt": f"{case.name} test", **extra},
                timeout=30,
            )
            assert response.status_code == 400, f"{case.name} {param}: {response.text}"
            error = response.json()["error"]
            assert error["param"] == param, f"{case.name}: {error}"
            assert (case.a.submissions, case.b.submissions) == submitted, case.name
            checked.append(f"{case.name}:{param}")
    # The task shape's upstream is permissive ("the upstream decides"); every adapter
    # with native limits is held to them.
    assert {c.split(":")[0] for c in checked} >= set(PROVIDERS) - {"task_api"}, checked


def test_content_refusal_fails_the_job_and_is_not_tried_elsewhere(
    cases: dict[str, Case], gateway: tuple[ServerProcess, str]
) -> None:
    for case in cases.values():
        case.a.fail_tasks = case.module.CONTENT_REFUSAL
    before = {name: (case.a.submissions, case.b.submissions) for name, case in cases.items()}
    jobs = {name: _create(gateway, case.model, case.body()) for name, case in cases.items()}
    for name, body in _wait_all(gateway, jobs).items():
        assert body["status"] == "failed", name
        assert body["error"]["code"] == "upstream_content_refused", f"{name}: {body['error']}"
        # The provider's own words.
        _, message = cases[name].module.CONTENT_REFUSAL
        assert message.split(" (")[0] in body["error"]["message"], f"{name}: {body['error']}"
        assert body["cost"] == 0, name
        a0, b0 = before[name]
        assert cases[name].a.submissions == a0 + 1, name
        assert cases[name].b.submissions == b0, f"{name}: a refusal was sent elsewhere"


def test_transient_failure_is_tried_once_on_the_next_deployment(
    cases: dict[str, Case], gateway: tuple[ServerProcess, str]
) -> None:
    for case in cases.values():
        case.a.fail_tasks = case.module.TRANSIENT_FAILURE
    before = {name: (case.a.submissions, case.b.submissions) for name, case in cases.items()}
    try:
        jobs = {name: _create(gateway, case.model, case.body()) for name, case in cases.items()}
        for name, body in _wait_all(gateway, jobs).items():
            assert body["status"] == "completed", f"{name}: {body['error']}"
            a0, b0 = before[name]
            assert cases[name].a.submissions == a0 + 1, name
            assert cases[name].b.submissions == b0 + 1, name
    finally:
        _heal(gateway)


def test_transient_failure_with_nowhere_else_fails_with_the_providers_message(
    cases: dict[str, Case], gateway: tuple[ServerProcess, str]
) -> None:
    """A fal app failure (or any provider's own) is the provider's, never vidgate's
    internal_error: upstream_failed (or upstream_timeout) with the provider's message."""
    for case in cases.values():
        case.a.fail_tasks = case.module.TRANSIENT_FAILURE
    before = {name: case.a.submissions for name, case in cases.items()}
    try:
        jobs = {name: _create(gateway, case.solo, case.body()) for name, case in cases.items()}
        for name, body in _wait_all(gateway, jobs).items():
            assert body["status"] == "failed", name
            assert body["error"]["code"] == "upstream_failed", f"{name}: {body['error']}"
            _, message = cases[name].module.TRANSIENT_FAILURE
            assert message in body["error"]["message"], f"{name}: {body['error']}"
            assert cases[name].a.submissions == before[name] + 1, name
        assert jobs["fal"] and "(internal_error)" in _get(gateway, jobs["fal"])["error"]["message"]
    finally:
        _heal(gateway)


def test_rate_limit_then_success(
    cases: dict[str, Case], gateway: tuple[ServerProcess, str]
) -> None:
    for case in cases.values():
        case.a.fail_next_creates(1, 429)
    before = {name: (case.a.create_calls, case.a.submissions) for name, case in cases.items()}
    jobs = {name: _create(gateway, case.solo, case.body()) for name, case in cases.items()}
    for name, body in _wait_all(gateway, jobs).items():
        assert body["status"] == "completed", f"{name}: {body['error']}"
        calls, submissions = before[name]
        assert cases[name].a.create_calls - calls == 2, name  # refused once, then accepted
        assert cases[name].a.submissions - submissions == 1, name


def test_server_error_storm_falls_back_to_the_second_deployment(
    cases: dict[str, Case], gateway: tuple[ServerProcess, str]
) -> None:
    for case in cases.values():
        case.a.fail_all_creates(503)
    before = {name: (case.a.submissions, case.b.submissions) for name, case in cases.items()}
    jobs = {name: _create(gateway, case.model, case.body()) for name, case in cases.items()}
    for name, body in _wait_all(gateway, jobs).items():
        assert body["status"] == "completed", f"{name}: {body['error']}"
        a0, b0 = before[name]
        assert cases[name].a.submissions == a0 and cases[name].b.submissions == b0 + 1, name


def test_expired_result_urls(cases: dict[str, Case], gateway: tuple[ServerProcess, str]) -> None:
    for case in cases.values():
        if case.module.REFRESHES_URLS:
            case.a.expire_first_download = True
        else:
            case.a.expire_urls = True
    jobs = {name: _create(gateway, case.solo, case.body()) for name, case in cases.items()}
    for name, body in _wait_all(gateway, jobs).items():
        if cases[name].module.REFRESHES_URLS:
            assert body["status"] == "completed", (
                f"{name} should re-fetch a fresh URL: {body['error']}"
            )
        else:
            assert body["status"] == "failed" and body["error"]["code"] == "result_expired", (
                f"{name}: {body}"
            )


def test_delete_cancels_upstream(
    cases: dict[str, Case], gateway: tuple[ServerProcess, str]
) -> None:
    srv, key = gateway
    able = {n: c for n, c in cases.items() if c.module.SUPPORTS_CANCEL}
    for case in able.values():
        case.a.polls_to_finish = 10_000
    jobs = {name: _create(gateway, case.solo, case.body()) for name, case in able.items()}
    _wait_all(gateway, jobs, until=("processing",))
    deadline = time.monotonic() + 20
    for name, job_id in jobs.items():
        # Submitted upstream once the fake holds a task for it.
        while able[name].a.submissions == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert (
            httpx.delete(
                f"{srv.base_url}/v1/videos/{job_id}", headers={"Authorization": f"Bearer {key}"}
            ).status_code
            == 200
        )
    for name, case in able.items():
        while not case.a.cancelled and time.monotonic() < deadline:
            time.sleep(0.1)
        assert case.a.cancelled, f"{name}: upstream task not cancelled"


def test_kill_9_while_waiting_upstream_resumes_the_same_tasks(
    cases: dict[str, Case], gateway: tuple[ServerProcess, str]
) -> None:
    srv, _ = gateway
    for case in cases.values():
        case.a.polls_to_finish = 4
    before = {name: case.a.submissions for name, case in cases.items()}
    jobs = {name: _create(gateway, case.solo, case.body()) for name, case in cases.items()}
    # Kill once every job waits upstream: its upstream id is committed. (Killed inside a
    # submission instead, a provider without an idempotency key could see it twice;
    # docs/providers.md names that window.)
    import psycopg

    deadline = time.monotonic() + 30
    with psycopg.connect(srv.env["VIDGATE_DATABASE_URL"], autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT count(*) FROM jobs WHERE id = ANY(%s) AND state = 'waiting'",
                (list(jobs.values()),),
            ).fetchone()
            if row and row[0] == len(jobs):
                break
            time.sleep(0.05)
    srv.kill()
    srv.start()
    for name, body in _wait_all(gateway, jobs, timeout=90).items():
        assert body["status"] == "completed", f"{name}: {body['error']}"
        assert cases[name].a.submissions == before[name] + 1, f"{name} was submitted twice"


def _secrets(cases: dict[str, Case]) -> list[str]:
    found: list[str] = []
    for case in cases.values():
        found += [
            str(v)
            for v in case.module.DEPLOYMENT.get("credentials", {}).values()
            if len(str(v)) >= 6
        ]
    return found


def test_models_show_deployments_and_health_but_no_secret(
    cases: dict[str, Case], gateway: tuple[ServerProcess, str]
) -> None:
    srv, key = gateway
    response = httpx.get(f"{srv.base_url}/v1/models", headers={"Authorization": f"Bearer {key}"})
    models = {m["id"]: m for m in response.json()["data"]}
    for case in cases.values():
        views = {d["provider"]: d for d in models[case.model]["deployments"]}
        assert views[f"{case.name}-a"]["configured"] and views[f"{case.name}-b"]["configured"], (
            case.name
        )
    # No credential in API responses, job records, or logs (after every scenario above).
    import psycopg

    url = srv.env["VIDGATE_DATABASE_URL"]
    with psycopg.connect(url) as conn:
        dump = "\n".join(str(row) for row in conn.execute("SELECT * FROM jobs").fetchall())
        dump += "\n".join(
            str(row) for row in conn.execute("SELECT * FROM deployment_health").fetchall()
        )
    for secret in _secrets(cases):
        assert secret not in response.text
        assert secret not in dump
        assert secret not in srv.log()
