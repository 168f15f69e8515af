"""The console's files as the gateway serves them: ``/`` redirects to ``/ui/``, the
page and its modules carry the strict Content-Security-Policy, a path that names no
console file is a 404 in the API's error shape, and ``serve`` prints the address."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from tests.conftest import ServerProcess

import vidgate


def test_root_redirects_to_the_console(server: ServerProcess) -> None:
    for path in ("/", "/ui"):
        answer = httpx.get(server.base_url + path)
        assert answer.status_code == 307
        assert answer.headers["location"] == "/ui/"


def test_the_console_is_served_with_a_strict_csp(server: ServerProcess) -> None:
    page = httpx.get(server.base_url + "/ui/")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert '<script type="module" src="/ui/app.js">' in page.text
    csp = page.headers["content-security-policy"]
    directives = dict(part.strip().split(" ", 1) for part in csp.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'"
    assert directives["img-src"] == "'self'"
    assert directives["media-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe-inline" not in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    for path, kind in (
        ("/ui/app.js", "text/javascript"),
        ("/ui/pages/gallery.js", "text/javascript"),
        ("/ui/style.css", "text/css"),
    ):
        answer = httpx.get(server.base_url + path)
        assert answer.status_code == 200, path
        assert answer.headers["content-type"].startswith(kind)
        assert answer.headers["content-security-policy"] == csp


def test_unknown_console_paths_are_404(server: ServerProcess) -> None:
    for path in ("/ui/nope.js", "/ui/pages/", "/ui/../pyproject.toml", "/ui/%2e%2e/cli.py"):
        answer = httpx.get(server.base_url + path)
        assert answer.status_code == 404, path
        assert answer.json()["error"]["code"] == "not_found"


def test_serve_prints_the_console_address(server: ServerProcess) -> None:
    assert f"console: http://127.0.0.1:{server.port}/ui/" in server.log()


def test_the_page_preloads_the_modules_of_the_shell_and_the_gallery(
    server: ServerProcess,
) -> None:
    """index.html names for ``modulepreload`` every module that app.js imports, directly
    or not (the gallery, the first page, among them), so the browser asks for them all
    at once rather than an import level after another; a module added and not listed
    would load later. The other pages are left to ``import()`` when opened."""
    static = Path(vidgate.__file__).parent / "ui" / "static"
    needed: set[str] = set()
    todo = [static / "app.js"]
    while todo:
        module = todo.pop()
        for name in re.findall(r'^import .* from "([^"]+)";$', module.read_text(), re.M):
            found = (module.parent / name).resolve()
            path = f"/ui/{found.relative_to(static).as_posix()}"
            if path not in needed:
                needed.add(path)
                todo.append(found)
    assert "/ui/pages/gallery.js" in needed
    page = httpx.get(server.base_url + "/ui/").text
    preloaded = set(re.findall(r'<link rel="modulepreload" href="([^"]+)">', page))
    assert preloaded == needed
