"""Form bodies are read strictly: complete, well-formed and UTF-8, or a 400."""

from collections.abc import AsyncIterator

import pytest

from vidgate.api.forms import FormBody, read_multipart, read_urlencoded
from vidgate.core.errors import InvalidRequest

BOUNDARY = "b0undary"
CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


def part(name: bytes, data: bytes, *, filename: bytes | None = None) -> bytes:
    disposition = b'form-data; name="' + name + b'"'
    if filename is not None:
        disposition += b'; filename="' + filename + b'"'
    head = b"--" + BOUNDARY.encode() + b"\r\nContent-Disposition: " + disposition + b"\r\n"
    return head + b"\r\n" + data + b"\r\n"


END = f"--{BOUNDARY}--\r\n".encode()
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) + b"\r\n--not-the-boundary\r\n"


async def chunks(body: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


async def parse(body: bytes, *, size: int = 1 << 16, max_files: int = 2) -> FormBody:
    return await read_multipart(
        CONTENT_TYPE, chunks(body, size), max_files=max_files, max_fields=200
    )


async def refused(body: bytes, *fragments: str, content_type: str = CONTENT_TYPE) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as info:
        await read_multipart(content_type, chunks(body, 7), max_files=2, max_fields=3)
    assert info.value.code == "invalid_body"
    for fragment in fragments:
        assert fragment in info.value.message, info.value.message
    return info.value


@pytest.mark.parametrize("size", [1, 3, 64, 1 << 16])
async def test_a_whole_body_in_any_chunking(size: int) -> None:
    body = (
        part(b"prompt", "caf\u00e9 \u2615\nline".encode())
        + part(b"metadata[k]", b"")
        + part(b"input_reference", PNG, filename=b"a.png")
        + END
        + b"epilogue, ignored"
    )
    form = await parse(body, size=size)
    assert form.fields == [("prompt", "caf\u00e9 \u2615\nline"), ("metadata[k]", "")]
    assert form.files == [("input_reference", PNG)]


@pytest.mark.parametrize(
    "cut",
    [
        len(END),  # the closing boundary missing
        len(END) + 2,  # the CRLF before it too
        len(END) + 40,  # inside the file's bytes
    ],
)
async def test_a_truncated_body_is_refused(cut: int) -> None:
    body = part(b"prompt", b"x") + part(b"input_reference", PNG, filename=b"a.png") + END
    await refused(body[:-cut], "ends before its closing boundary")


async def test_an_empty_body_is_refused() -> None:
    await refused(b"", "ends before its closing boundary")


async def test_field_values_and_names_must_be_utf8() -> None:
    error = await refused(part(b"prompt", b"caf\xe9") + END, "multipart field 'prompt'", "UTF-8")
    assert error.param == "prompt"
    await refused(part(b"prompt", b"\xed\xa0\x80") + END, "UTF-8")  # an encoded surrogate
    await refused(part(b"pr\xffompt", b"x") + END, "field name is not valid UTF-8")


async def test_file_bytes_are_kept_as_sent() -> None:
    form = await parse(part(b"input_reference", b"\xff\xfe\x00", filename=b"\xff") + END)
    assert form.files == [("input_reference", b"\xff\xfe\x00")]


async def test_malformed_bodies_are_refused() -> None:
    await refused(part(b"prompt", b"x") + END, "no boundary", content_type="multipart/form-data")
    no_name = b"--" + BOUNDARY.encode() + b"\r\nContent-Disposition: form-data\r\n\r\nx\r\n" + END
    await refused(no_name, '"name"')
    await refused(b"garbage before any boundary\r\n" + END, "malformed multipart body")


async def test_limits() -> None:
    files = b"".join(part(b"reference_images[]", b"x", filename=b"a") for _ in range(3))
    assert (await refused(files + END, "too many files; at most 2")).param == "reference_images[]"
    fields = b"".join(part(f"f{i}".encode(), b"x") for i in range(4))
    await refused(fields + END, "too many fields; at most 3")
    await refused(part(b"prompt", b"x" * (1024 * 1024 + 1)) + END, "larger than 1048576 bytes")


def test_urlencoded() -> None:
    form = read_urlencoded(b"prompt=caf%C3%A9+ok&metadata%5Bk%5D=&flag", max_fields=10)
    assert form.fields == [("prompt", "caf\u00e9 ok"), ("metadata[k]", ""), ("flag", "")]
    assert form.files == []
    assert read_urlencoded("prompt=caf\u00e9".encode(), max_fields=10).fields == [
        ("prompt", "caf\u00e9")
    ]


@pytest.mark.parametrize(
    "raw", [b"prompt=caf%E9", b"prompt=caf\xe9", b"prompt=%ED%A0%80", b"%FF=x"]
)
def test_urlencoded_must_be_utf8(raw: bytes) -> None:
    with pytest.raises(InvalidRequest) as info:
        read_urlencoded(raw, max_fields=10)
    assert info.value.code == "invalid_body"
    assert "UTF-8" in info.value.message


def test_urlencoded_field_limit() -> None:
    with pytest.raises(InvalidRequest) as info:
        read_urlencoded(b"&".join(b"f=1" for _ in range(11)), max_fields=10)
    assert "too many fields; at most 10" in info.value.message
