"""Every route of the OpenAPI document, fuzzed by schemathesis against a real server,
with both key kinds: no answer is a server error, and every answer matches the document
(status code, content type, body schema; errors in the OpenAI shape).

The example count is bounded for CI (``VIDGATE_FUZZ_EXAMPLES``, default 25 per route);
``scripts/fuzz`` runs the same test with many more.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from tests.conftest import ServerProcess, fast_env, make_database

pytestmark = pytest.mark.slow

EXAMPLES = int(os.environ.get("VIDGATE_FUZZ_EXAMPLES", "25"))


@pytest.fixture(scope="module")
def fuzz_server(
    pg_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """A server of its own, with the production URL policy (https to public hosts
    only, so nothing the fuzzer writes into a URL is fetched), and no worker: creates
    are stored and priced, never rendered."""
    env = fast_env(VIDGATE_DATABASE_URL=make_database(pg_server))
    env["VIDGATE_ALLOW_INSECURE_URLS"] = "false"
    srv = ServerProcess(
        data_dir=tmp_path_factory.mktemp("fuzz") / "vidgate", env=env, extra_args=("--no-worker",)
    )
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def keys(fuzz_server: ServerProcess) -> dict[str, str]:
    return {
        "test": fuzz_server.create_key("fuzz test"),
        "live": fuzz_server.create_key("fuzz live", "--live"),
    }


@pytest.fixture(scope="module")
def api(fuzz_server: ServerProcess) -> Any:
    return schemathesis.openapi.from_url(f"{fuzz_server.base_url}/openapi.json")


# Documented 503s: a live key with no configured deployment of the model (this server
# configures none), and the database being away. Any other 5xx is a failure.
EXPECTED_503 = {"no_deployment", "service_unavailable"}


def not_a_server_error(ctx: Any, response: Any, case: Any) -> bool:
    status = response.status_code
    if status >= 500:
        code = None
        with contextlib.suppress(ValueError, KeyError, TypeError):
            code = response.json()["error"]["code"]
        if not (status == 503 and code in EXPECTED_503):
            raise AssertionError(f"server error {status}: {response.text[:500]}")
    return True


CHECKS = (
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
)


def test_every_route_holds_up(api: Any, keys: dict[str, str]) -> None:
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 15, [op.label for op in operations]
    failures: list[str] = []
    for operation in operations:
        # Valid requests and invalid ones (wrong types, values out of the schema).
        cases = st.one_of(
            operation.as_strategy(GenerationMode.POSITIVE),
            operation.as_strategy(GenerationMode.NEGATIVE),
        )

        @given(case=cases)
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def fuzz(case: Any) -> None:
            for key in keys.values():
                headers = {**(case.headers or {}), "Authorization": f"Bearer {key}"}
                response = case.call(headers=headers, timeout=30)
                case.validate_response(response, checks=CHECKS, headers=headers)

        try:
            fuzz()
        except Exception as exc:
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)
