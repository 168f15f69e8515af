"""DNS rebinding against the image fetch and the webhook sender, inside a network namespace.

A name that answers a public address on its first lookup and 127.0.0.1 on the next used
to pass the SSRF check (first lookup) and then be connected to at loopback (the HTTP
client's own lookup). The gateway now resolves once and connects to what it checked.
Everything runs in ``unshare -n`` (tests/e2e/ssrf_netns_scenario.py), where loopback
also carries a public IPv4 and IPv6 address, so nothing can leave the machine; the
scenario prints a verdict that the tests below read.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import make_database

pytestmark = pytest.mark.slow

SCENARIO = Path(__file__).with_name("ssrf_netns_scenario.py")
PUBLIC_V4 = "93.184.216.34"
PUBLIC_V6 = "2606:2800:220:1::1"
SETUP = (
    f"ip link set lo up && ip addr add {PUBLIC_V4}/32 dev lo"
    f" && ip -6 addr add {PUBLIC_V6}/128 dev lo nodad"
)


def _namespace_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "needs root to make a private network namespace"
    if not shutil.which("unshare") or not shutil.which("ip"):
        return "needs unshare and ip (util-linux, iproute2)"
    probe = subprocess.run(
        ["unshare", "-n", "sh", "-c", SETUP], capture_output=True, text=True, timeout=30
    )
    if probe.returncode != 0:
        return f"cannot set up a network namespace: {probe.stderr.strip()[:200]}"
    return None


@pytest.fixture(scope="module")
def verdict(pg_server: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    reason = _namespace_unavailable()
    if reason is not None:
        pytest.skip(reason)
    work = tmp_path_factory.mktemp("ssrf")
    work.chmod(0o755)
    command = f"{SETUP} && exec {sys.executable} {SCENARIO} {work} '{make_database(pg_server)}'"
    run = subprocess.run(
        ["unshare", "-n", "sh", "-c", command], capture_output=True, text=True, timeout=240
    )
    lines = run.stdout.strip().splitlines()
    assert run.returncode == 0 and lines, f"scenario failed:\n{run.stdout}\n{run.stderr}"
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def _refused(result: dict[str, Any], param: str, *words: str) -> str:
    assert result["status"] == 400, result
    error = result["body"]["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error", error
    message = str(error["message"])
    for word in words:
        assert word in message, message
    for leak in ("Error", "Exception", "aiohttp", "httpx"):
        assert leak not in message, message
    return message


def test_a_rebinding_name_reaches_only_the_public_peer(verdict: dict[str, Any]) -> None:
    created = verdict["results"]["rebinding"]
    assert created["status"] == 200, created
    # The image was fetched from the public peer, over TLS checked against the name.
    assert {"method": "GET", "path": "/img.png"} in verdict["peer_requests"]
    assert "img.rebind.test" in verdict["server_names"]
    # Each name was looked up once: there was no second answer to connect to.
    assert verdict["lookups"]["img.rebind.test"] == 1
    assert verdict["trap_connections"] == []


def test_the_webhook_of_a_rebinding_name_reaches_only_the_public_peer(
    verdict: dict[str, Any],
) -> None:
    assert verdict["webhook_delivered"], verdict
    job_id = verdict["results"]["rebinding"]["body"]["id"]
    events = [json.loads(body) for body in verdict["hook_bodies"]]
    assert [e["data"]["id"] for e in events] == [job_id]
    assert "hook.rebind.test" in verdict["server_names"]
    assert verdict["lookups"]["hook.rebind.test"] == 1
    assert verdict["trap_connections"] == []


def test_a_public_ipv6_name_is_fetched(verdict: dict[str, Any]) -> None:
    assert verdict["results"]["v6"]["status"] == 200, verdict["results"]["v6"]
    assert "v6.rebind.test" in verdict["server_names"]


@pytest.mark.parametrize(
    ("case", "words"),
    [
        ("loop", ["resolves to a non-public address (loopback)"]),
        ("nat64", ["resolves to a non-public address", "NAT64"]),
        ("mapped", ["resolves to a non-public address", "IPv4-mapped"]),
        ("sixtofour", ["resolves to a non-public address", "6to4"]),
        ("mixed", ["resolves to a non-public address (loopback)"]),
        ("literal_mapped", ["non-public address", "IPv4-mapped"]),
        ("wrong_cert", ["TLS certificate was refused", "wrong.rebind.test"]),
    ],
)
def test_image_urls_that_reach_no_public_peer_are_a_400_in_words(
    verdict: dict[str, Any], case: str, words: list[str]
) -> None:
    message = _refused(verdict["results"][case], "image", *words)
    # The client is told the kind of address, not which internal address a name has.
    assert "127.0.0.1" not in message or case == "literal_mapped"


def test_a_webhook_to_a_loopback_name_is_never_sent(verdict: dict[str, Any]) -> None:
    assert verdict["results"]["hook_to_loopback"]["status"] == 200
    assert verdict["refusal_logged"], verdict["refusal_lines"]
    assert verdict["trap_connections"] == []
    job_id = verdict["results"]["hook_to_loopback"]["body"]["id"]
    assert all(json.loads(b)["data"]["id"] != job_id for b in verdict["hook_bodies"])
