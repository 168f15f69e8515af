"""The DNS-rebinding scenario, run by test_ssrf_rebinding.py inside a private network
namespace whose loopback also holds the public addresses PUBLIC_V4 and PUBLIC_V6.

    python tests/e2e/ssrf_netns_scenario.py WORK_DIR DATABASE_URL

It starts, all inside the namespace:
- an HTTPS peer on PUBLIC_V4 and PUBLIC_V6, port PORT, with a certificate for the test
  names signed by a test CA (the gateway trusts it through SSL_CERT_FILE); it serves a
  PNG and takes webhooks, and records the TLS server name (SNI) of each connection;
- a plain TCP trap on 127.0.0.1 and ::1, same port, that records any connection;
- one gateway (``vidgate serve``, VIDGATE_ALLOW_INSECURE_URLS=false) whose name lookups
  go through tests/e2e/rebinding_dns/sitecustomize.py, where a rebinding name answers the
  public address on its first lookup and loopback on every later one.

Then it makes the requests and prints one JSON verdict on its last stdout line.
"""

from __future__ import annotations

import http.server
import json
import os
import socket
import ssl
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from tests.certs import CertAuthority  # noqa: E402
from tests.conftest import ServerProcess, fast_env, png_bytes  # noqa: E402

PUBLIC_V4 = "93.184.216.34"
PUBLIC_V6 = "2606:2800:220:1::1"
PORT = 8443
PNG = png_bytes(32, 24, (0, 128, 255))

# name -> answers of its 1st, 2nd, ... lookup (the last one repeats).
DNS = {
    "img.rebind.test": [[PUBLIC_V4], ["127.0.0.1"]],
    "hook.rebind.test": [[PUBLIC_V4], ["127.0.0.1"]],
    "v6.rebind.test": [[PUBLIC_V6], ["::1"]],
    "loop.rebind.test": [["127.0.0.1"]],
    "nat64.rebind.test": [["64:ff9b::7f00:1"]],
    "mapped.rebind.test": [["::ffff:127.0.0.1"]],
    "sixtofour.rebind.test": [["2002:7f00:1::1"]],
    "mixed.rebind.test": [[PUBLIC_V4, "127.0.0.1"]],
    "hookloop.rebind.test": [["127.0.0.1"]],
    # Resolves to the peer, whose certificate does not name it.
    "wrong.rebind.test": [[PUBLIC_V4]],
}
CERT_NAMES = [name for name in DNS if name != "wrong.rebind.test"]


class Peer:
    """The public HTTPS server, on both address families."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.requests: list[dict[str, Any]] = []
        self.server_names: list[str | None] = []
        context.sni_callback = self._sni  # type: ignore[assignment]
        peer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                peer.requests.append({"method": "GET", "path": self.path})
                self.send_response(200)
                self.send_header("content-type", "image/png")
                self.send_header("content-length", str(len(PNG)))
                self.end_headers()
                self.wfile.write(PNG)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                peer.requests.append({"method": "POST", "path": self.path, "body": body.decode()})
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        class V6Server(http.server.ThreadingHTTPServer):
            address_family = socket.AF_INET6

        self.servers = [
            http.server.ThreadingHTTPServer((PUBLIC_V4, PORT), Handler),
            V6Server((PUBLIC_V6, PORT), Handler),
        ]
        for server in self.servers:
            server.socket = context.wrap_socket(server.socket, server_side=True)
            threading.Thread(target=server.serve_forever, daemon=True).start()

    def _sni(self, sock: Any, name: str | None, ctx: Any) -> None:
        self.server_names.append(name)


class Trap:
    """Plain listeners on loopback, where a rebound name would connect."""

    def __init__(self) -> None:
        self.connections: list[str] = []
        for family, address in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
            listener = socket.socket(family, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((address, PORT))
            listener.listen(16)
            threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            conn, peer = listener.accept()
            self.connections.append(str(peer[0]))
            conn.close()


def _wait(condition: Any, timeout: float = 45) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def main(work: Path, database_url: str) -> dict[str, Any]:
    ca = CertAuthority.create(work)
    peer = Peer(ca.server_context(work, CERT_NAMES))
    trap = Trap()
    dns_log = work / "dns.log"
    server = ServerProcess(
        data_dir=work / "vidgate",
        env=fast_env(
            VIDGATE_DATABASE_URL=database_url,
            VIDGATE_ALLOW_INSECURE_URLS="false",
            VIDGATE_TEST_DNS=json.dumps(DNS),
            VIDGATE_TEST_DNS_LOG=str(dns_log),
            SSL_CERT_FILE=str(ca.cert_path),
            PYTHONPATH=os.pathsep.join(
                [str(ROOT / "tests" / "e2e" / "rebinding_dns"), os.environ.get("PYTHONPATH", "")]
            ),
        ),
    )
    server.start()
    try:
        key = server.create_key("ssrf", "--tenant", "ssrf")
        client = httpx.Client(
            base_url=server.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=60
        )

        def create(**fields: Any) -> dict[str, Any]:
            body = {"model": "sandbox", "prompt": "ssrf", "duration": 1, "size": "320x240"}
            response = client.post("/v1/videos/generations", json={**body, **fields})
            return {"status": response.status_code, "body": response.json()}

        def image(name: str) -> dict[str, Any]:
            return create(image=f"https://{name}:{PORT}/img.png")

        results = {
            "rebinding": create(
                image=f"https://img.rebind.test:{PORT}/img.png",
                webhook_url=f"https://hook.rebind.test:{PORT}/hook",
            ),
            "v6": image("v6.rebind.test"),
            "loop": image("loop.rebind.test"),
            "nat64": image("nat64.rebind.test"),
            "mapped": image("mapped.rebind.test"),
            "sixtofour": image("sixtofour.rebind.test"),
            "mixed": image("mixed.rebind.test"),
            "wrong_cert": image("wrong.rebind.test"),
            "literal_mapped": image("[::ffff:7f00:1]"),
            "hook_to_loopback": create(webhook_url=f"https://hookloop.rebind.test:{PORT}/hook"),
        }
        hook_job = results["rebinding"]["body"].get("id")
        refused_job = results["hook_to_loopback"]["body"].get("id")
        delivered = _wait(
            lambda: any(hook_job and hook_job in r.get("body", "") for r in peer.requests)
        )
        refusal_logged = _wait(
            lambda: any(
                "webhook.refused" in line and str(refused_job) in line
                for line in server.log().splitlines()
            )
        )
        lookups: dict[str, int] = {}
        if dns_log.exists():
            for line in dns_log.read_text().splitlines():
                name = line.split()[0]
                lookups[name] = lookups.get(name, 0) + 1
        refusal_lines = [line for line in server.log().splitlines() if "webhook.refused" in line]
        return {
            "results": results,
            "webhook_delivered": delivered,
            "refusal_logged": refusal_logged,
            "refusal_lines": refusal_lines,
            "peer_requests": [{k: v for k, v in r.items() if k != "body"} for r in peer.requests],
            "hook_bodies": [r["body"] for r in peer.requests if r["method"] == "POST"],
            "server_names": peer.server_names,
            "trap_connections": trap.connections,
            "lookups": lookups,
        }
    finally:
        server.stop()


if __name__ == "__main__":
    verdict = main(Path(sys.argv[1]), sys.argv[2])
    print(json.dumps(verdict))
