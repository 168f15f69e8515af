"""Hostile field values: one validation at the edge, whatever the body's encoding.

Every value here once reached PostgreSQL, a provider or the blob store unchecked and
answered 500, poisoned a tenant's list, failed its job after every retry, or stored an
image for a request that was then refused. Each must now be a 400 (or the 404 of a
missing video) that names the parameter, and must leave nothing behind.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from tests.conftest import ServerProcess, png_bytes
from tests.e2e.test_bad_input import _assert_error

GEN = "/v1/videos/generations"
BOUNDARY = "vidgate-test-boundary"
BIG_SEED = "123456789012345678901234567890"
OK_FIELDS = {"model": "sandbox", "prompt": "hostile", "seconds": "1", "size": "320x240"}

Send = Callable[..., httpx.Response]


@pytest.fixture(scope="module")
def send(server: ServerProcess, key_a: str) -> Send:
    def request(method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key_a}", **kwargs.pop("headers", {})}
        return httpx.request(
            method, f"{server.base_url}{path}", headers=headers, timeout=30, **kwargs
        )

    return request


def _count(db: str, sql: str, *args: Any) -> int:
    with psycopg.connect(db) as conn:
        row = conn.execute(sql, args).fetchone()
        assert row is not None
        return int(row[0])


def _jobs(db: str) -> int:
    return _count(db, "SELECT count(*) FROM jobs")


def _multipart(
    fields: dict[str, str | bytes],
    files: Sequence[tuple[str, bytes]] = (),
    *,
    closed: bool = True,
) -> dict[str, Any]:
    """A multipart body built by hand, so that it can be cut short or hold any bytes."""
    out = bytearray()
    for name, value in fields.items():
        data = value.encode() if isinstance(value, str) else value
        out += f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        out += data + b"\r\n"
    for name, data in files:
        out += (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}";'
            f' filename="a.png"\r\nContent-Type: image/png\r\n\r\n'
        ).encode()
        out += data + b"\r\n"
    if closed:
        out += f"--{BOUNDARY}--\r\n".encode()
    return {
        "content": bytes(out),
        "headers": {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
    }


def _unique_png() -> bytes:
    """A PNG no other test sent, so that its blob row and file are this test's alone."""
    r, g, b = secrets.token_bytes(3)
    return png_bytes(64 + secrets.randbelow(64), 48, (r, g, b))


def _data_url(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


# --- seeds -----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [BIG_SEED, "4294967296", "-1", "1.5", "true", ""])
def test_out_of_range_seeds_are_refused_in_every_encoding(
    send: Send, session_db: str, seed: str
) -> None:
    before = _jobs(session_db)
    fields = {**OK_FIELDS, "seed": seed}
    for path in ("/v1/videos", GEN):
        for encoding in (_multipart(fields), {"data": fields}):
            error = _assert_error(
                send("POST", path, **encoding), 400, param="seed", code="invalid_parameter"
            )
            assert "0-4294967295" in error["message"], error
    assert _jobs(session_db) == before


@pytest.mark.parametrize("seed", [2**40, -1, True, 1.5, 2**32])
def test_out_of_range_json_seeds_are_refused(send: Send, session_db: str, seed: Any) -> None:
    before = _jobs(session_db)
    body = {**OK_FIELDS, "seed": seed}
    for path in ("/v1/videos", GEN):
        error = _assert_error(
            send("POST", path, json=body), 400, param="seed", code="invalid_parameter"
        )
        assert "0-4294967295" in error["message"], error
    assert _jobs(session_db) == before


def test_a_huge_form_seed_leaves_the_tenant_readable(send: Send) -> None:
    """Once a 30-digit seed was stored, the tenant's list and the job answered 500."""
    _assert_error(send("POST", "/v1/videos", **_multipart({**OK_FIELDS, "seed": BIG_SEED})), 400)
    listed = send("GET", "/v1/videos", params={"limit": 100})
    assert listed.status_code == 200, listed.text
    top = send("POST", "/v1/videos", **_multipart({**OK_FIELDS, "seed": "4294967295"}))
    assert top.status_code == 200, top.text
    assert top.json()["seed"] == 4294967295
    assert send("GET", f"/v1/videos/{top.json()['id']}").json()["seed"] == 4294967295


# --- control characters ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"prompt": "a fox\x00"}, "prompt"),
        ({"negative_prompt": "blur\x00"}, "negative_prompt"),
        ({"metadata": {"k\x00": "v"}}, "metadata"),
        ({"metadata": {"k": "v\x00"}}, "metadata"),
        ({"metadata": {"k": "line\nbreak"}}, "metadata"),
        ({"webhook_url": "https://example.com/\x00hook"}, "webhook_url"),
        ({"model": "sandbox\x00"}, "model"),
        ({"size": "320x240\x00"}, "size"),
        ({"resolution": "240p\x07"}, "resolution"),
        ({"aspect_ratio": "4:3\x1b"}, "aspect_ratio"),
        ({"prompt": "C1 \x85 control"}, "prompt"),
        ({"prompt": "delete \x7f"}, "prompt"),
    ],
)
def test_control_characters_name_the_parameter(
    send: Send, session_db: str, extra: dict[str, Any], param: str
) -> None:
    before = _jobs(session_db)
    body = {**OK_FIELDS, **extra}
    for path in ("/v1/videos", GEN):
        error = _assert_error(
            send("POST", path, json=body), 400, param=param, code="invalid_parameter"
        )
        assert "control character" in error["message"], error
    assert _jobs(session_db) == before


def test_control_characters_in_forms_name_the_parameter(send: Send) -> None:
    as_form = _multipart({**OK_FIELDS, "metadata[run\x00]": "1"})
    _assert_error(send("POST", "/v1/videos", **as_form), 400, "metadata", "invalid_parameter")
    urlencoded = {**OK_FIELDS, "negative_prompt": "x\x00y"}
    _assert_error(send("POST", GEN, data=urlencoded), 400, "negative_prompt", "invalid_parameter")


def test_prompts_keep_tabs_and_newlines(send: Send) -> None:
    body = {**OK_FIELDS, "prompt": "line one\n\tline two\r\n", "negative_prompt": "a\tb"}
    created = send("POST", "/v1/videos", json=body)
    assert created.status_code == 200, created.text
    assert created.json()["prompt"] == "line one\n\tline two"


# --- ids --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/videos/video_%00"),  # answered by the fast lane
        ("GET", "/v1/videos/video_01m895wacjegqbt7hqqq6bfx%00"),
        ("GET", "/v1/videos/%00"),
        ("DELETE", "/v1/videos/video_%00"),
        ("GET", "/v1/videos/video_%00/content"),
        ("HEAD", "/v1/videos/video_%00/content"),
        ("POST", "/v1/videos/video_%00/remix"),
        ("GET", "/v1/videos/generations/video_%00"),
    ],
)
def test_ids_of_another_shape_are_missing_videos(send: Send, method: str, path: str) -> None:
    kwargs: dict[str, Any] = {"json": {"prompt": "x"}} if method == "POST" else {}
    response = send(method, path, **kwargs)
    assert response.status_code == 404, response.text
    if method != "HEAD":
        _assert_error(response, 404, code="video_not_found")


def test_extension_ids(send: Send) -> None:
    _assert_error(
        send("POST", "/v1/videos/extensions", json={"prompt": "x", "video": {"id": "video_\x00"}}),
        400,
        param="video.id",
        code="invalid_parameter",
    )
    _assert_error(
        send("POST", "/v1/videos/extensions", json={"prompt": "x", "video": {"id": "../etc"}}),
        404,
        code="video_not_found",
    )


@pytest.mark.parametrize("after", ["\x00", "video_\x00", "not-an-id", "video_" + "z" * 27])
def test_a_malformed_after_cursor_is_refused(send: Send, after: str) -> None:
    error = _assert_error(
        send("GET", "/v1/videos", params={"after": after}), 400, "after", "invalid_parameter"
    )
    assert "video id" in error["message"]


# --- form bodies ------------------------------------------------------------------------


def test_a_truncated_upload_is_refused(send: Send, session_db: str) -> None:
    """A file part cut off before the closing boundary once made a text-to-video job."""
    image = png_bytes()
    before = _jobs(session_db)
    cut = _multipart(OK_FIELDS, [("input_reference", image)], closed=False)
    _assert_error(send("POST", "/v1/videos", **cut), 400, code="invalid_body")
    mid_file = _multipart(OK_FIELDS, [("input_reference", image)])
    mid_file["content"] = mid_file["content"][: -len(f"\r\n--{BOUNDARY}--\r\n") - 10]
    _assert_error(send("POST", "/v1/videos", **mid_file), 400, code="invalid_body")
    assert _jobs(session_db) == before
    whole = send("POST", "/v1/videos", **_multipart(OK_FIELDS, [("input_reference", image)]))
    assert whole.status_code == 200, whole.text
    assert _jobs(session_db) == before + 1


def test_malformed_multipart_is_refused(send: Send) -> None:
    no_boundary = _multipart(OK_FIELDS)
    no_boundary["headers"] = {"Content-Type": "multipart/form-data"}
    _assert_error(send("POST", "/v1/videos", **no_boundary), 400, code="invalid_body")
    no_name = _multipart(OK_FIELDS)
    no_name["content"] = no_name["content"].replace(b'; name="prompt"', b"", 1)
    _assert_error(send("POST", "/v1/videos", **no_name), 400, code="invalid_body")
    garbage = _multipart({})
    garbage["content"] = b"\r\n\r\nnot a multipart body at all"
    _assert_error(send("POST", "/v1/videos", **garbage), 400, code="invalid_body")


def test_form_text_must_be_utf8(send: Send, session_db: str) -> None:
    """Multipart fields were read as Latin-1 (and urlencoded ones with U+FFFD) where
    JSON refused the same bytes."""
    before = _jobs(session_db)
    latin1 = _multipart({**OK_FIELDS, "prompt": "café".encode("latin-1")})
    _assert_error(send("POST", "/v1/videos", **latin1), 400, "prompt", "invalid_body")
    surrogate = _multipart({**OK_FIELDS, "prompt": b"x\xed\xa0\x80"})
    _assert_error(send("POST", GEN, **surrogate), 400, "prompt", "invalid_body")
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    for raw in (b"prompt=caf%E9", b"prompt=caf\xe9", b"prompt=%ED%A0%80"):
        body = raw + b"&model=sandbox&seconds=1&size=320x240"
        _assert_error(
            send("POST", "/v1/videos", content=body, headers=form), 400, None, "invalid_body"
        )
    assert _jobs(session_db) == before
    accepted = _multipart({**OK_FIELDS, "prompt": "café"})
    created = send("POST", "/v1/videos", **accepted)
    assert created.status_code == 200 and created.json()["prompt"] == "café", created.text


# --- nothing stored for a refused request ------------------------------------------------


def _stored(server: ServerProcess, db: str, image: bytes) -> tuple[int, bool]:
    sha = hashlib.sha256(image).hexdigest()
    on_disk = (Path(server.data_dir) / "media" / sha[:2] / sha).is_file()
    return _count(db, "SELECT count(*) FROM blobs WHERE sha256 = %s", sha), on_disk


def test_a_refused_request_stores_no_image(
    send: Send, server: ServerProcess, session_db: str
) -> None:
    good = _unique_png()
    not_image = b"not an image at all"
    refused = [
        # a bad image after a good one
        (
            "/v1/videos",
            _multipart(OK_FIELDS, [("input_reference", good), ("reference_images", not_image)]),
        ),
        (
            GEN,
            {
                "json": {
                    **OK_FIELDS,
                    "image": _data_url(good),
                    "reference_images": [_data_url(not_image)],
                }
            },
        ),
        # a good image, then a field that fails later checks
        ("/v1/videos", _multipart({**OK_FIELDS, "seconds": "999"}, [("input_reference", good)])),
        (
            "/v1/videos",
            _multipart(
                {**OK_FIELDS, "webhook_url": "ftp://x.example/"}, [("input_reference", good)]
            ),
        ),
        (GEN, {"json": {**OK_FIELDS, "image": _data_url(good), "n": 9}}),
        (
            GEN,
            {
                "json": {
                    **OK_FIELDS,
                    "image": _data_url(good),
                    "reference_images": [_data_url(good)] * 4,
                }
            },
        ),
    ]
    for path, request in refused:
        _assert_error(send("POST", path, **request), 400)
        assert _stored(server, session_db, good) == (0, False), path
    created = send("POST", "/v1/videos", **_multipart(OK_FIELDS, [("input_reference", good)]))
    assert created.status_code == 200, created.text
    assert _stored(server, session_db, good) == (1, True)
