"""The web console: the static files of ``vidgate/ui/static`` served at ``/ui/``, and
``/`` redirected there.

The console is plain HTML, CSS and JavaScript modules that call the public API with
the user's key (docs/console.md): nothing here knows a key or a tenant. The files are
read once, when the app is built, into a map from URL path to bytes: a request names
one of them or gets a 404, so no path a client writes ever reaches the file system.
Every answer carries a strict Content-Security-Policy: scripts, styles, images and
media from this origin only (images and media also from the bucket where content links
are presigned redirects), no inline script, no framing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response

from vidgate.api.errors import error_response
from vidgate.core.errors import NotFound

STATIC_DIR = Path(__file__).resolve().parent.parent / "ui" / "static"
PREFIX = "/ui/"

# 'self' only: the console's own files, the API at the same origin, and the signed
# content links (also this origin) for <img> and <video>. No 'unsafe-inline': every
# script is a module file and every style a stylesheet (JavaScript sets CSSOM
# properties, which CSP does not restrict).
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "media-src 'self'; connect-src 'self'; font-src 'self'; manifest-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    # Small files that change with each release: revalidated, never stale.
    "Cache-Control": "no-cache",
}
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
}


def content_security_policy(media_origins: Sequence[str] = ()) -> str:
    """The console's CSP; ``media_origins`` (media/stores.py ``presigned_origins``): where
    presigned content links redirect <img> and <video>, allowed beside 'self'."""
    if not media_origins:
        return CONTENT_SECURITY_POLICY
    sources = " ".join(["'self'", *media_origins])
    return CONTENT_SECURITY_POLICY.replace("img-src 'self'", f"img-src {sources}").replace(
        "media-src 'self'", f"media-src {sources}"
    )


@dataclass(frozen=True)
class StaticFile:
    body: bytes
    media_type: str


def load_files(root: Path = STATIC_DIR) -> dict[str, StaticFile]:
    """Every file under ``root`` of a type the console uses, by its path below it."""
    return {
        path.relative_to(root).as_posix(): StaticFile(path.read_bytes(), _TYPES[path.suffix])
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.suffix in _TYPES
    }


def install_console(
    app: FastAPI,
    files: dict[str, StaticFile] | None = None,
    *,
    media_origins: Sequence[str] = (),
) -> None:
    """Add ``/``, ``/ui`` and ``/ui/{path}`` to ``app`` (left out of the OpenAPI
    document: they are pages, not API); ``media_origins`` as ``content_security_policy``
    takes them."""
    served = load_files() if files is None else files
    index = served["index.html"]
    headers = {"Content-Security-Policy": content_security_policy(media_origins), **_HEADERS}

    async def root() -> Response:
        return RedirectResponse(PREFIX, status_code=307)

    async def page(path: str, request: Request) -> Response:
        # "" is the console itself; routes within it are in the fragment (#/gallery),
        # which never reaches the server.
        found = index if path == "" else served.get(path)
        if found is None:
            return error_response(NotFound(f"no console file {path!r}", code="not_found"))
        return Response(found.body, media_type=found.media_type, headers=headers)

    app.add_api_route("/", root, methods=["GET"], include_in_schema=False)
    app.add_api_route("/ui", root, methods=["GET"], include_in_schema=False)
    app.add_api_route(PREFIX + "{path:path}", page, methods=["GET"], include_in_schema=False)
