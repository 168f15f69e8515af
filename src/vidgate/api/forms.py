"""Form bodies (``multipart/form-data`` and ``application/x-www-form-urlencoded``),
read strictly.

Starlette's form parser is lenient where vidgate must not be: it keeps whatever parts
it has when a multipart body ends before its closing boundary (a truncated upload
became a text-to-video job without its image), and it reads field values that are not
valid UTF-8 as Latin-1 (while a JSON body with the same bytes is refused). So the
multipart body is fed to python-multipart's parser directly, with callbacks that
decode names and values as strict UTF-8, and the body counts only once the parser has
reached the closing boundary (its ``on_end``). Urlencoded bodies go through the
standard library's ``parse_qsl`` with strict UTF-8 decoding.

Any malformed form is an ``InvalidRequest`` with code ``invalid_body``. The body's
size is capped before it gets here (``api/edge.py``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from python_multipart import MultipartParser
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import parse_options_header

from vidgate.core.errors import InvalidRequest

# Starlette's limit for a part that is not a file: a field is text, never an upload.
MAX_FIELD_BYTES = 1024 * 1024


@dataclass
class FormBody:
    """The fields (in order, repeats kept) and the uploaded files of a form."""

    fields: list[tuple[str, str]] = field(default_factory=list)
    files: list[tuple[str, bytes]] = field(default_factory=list)


def _malformed(message: str, *, param: str | None = None) -> InvalidRequest:
    return InvalidRequest(message, param=param, code="invalid_body")


def _utf8(raw: bytes | bytearray, what: str, *, param: str | None = None) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _malformed(f"{what} is not valid UTF-8", param=param) from exc


@dataclass
class _Part:
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    name: str = ""
    is_file: bool = False
    data: bytearray = field(default_factory=bytearray)


class _Collector:
    """The callbacks of python-multipart's ``MultipartParser``: each part into a
    ``FormBody``, with the limits checked as the parts arrive."""

    def __init__(self, *, max_files: int, max_fields: int) -> None:
        self.form = FormBody()
        self.ended = False
        self._max_files = max_files
        self._max_fields = max_fields
        self._part = _Part()
        self._header_name = bytearray()
        self._header_value = bytearray()

    def on_part_begin(self) -> None:
        self._part = _Part()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        self._part.headers.append((bytes(self._header_name).lower(), bytes(self._header_value)))
        self._header_name, self._header_value = bytearray(), bytearray()

    def on_headers_finished(self) -> None:
        disposition = next((v for k, v in self._part.headers if k == b"content-disposition"), b"")
        _, options = parse_options_header(disposition)
        if b"name" not in options:
            raise _malformed('a multipart part has no Content-Disposition "name"')
        part = self._part
        part.name = _utf8(options[b"name"], "a multipart field name")
        part.is_file = b"filename" in options
        if part.is_file and len(self.form.files) >= self._max_files:
            raise _malformed(f"too many files; at most {self._max_files}", param=part.name)
        if not part.is_file and len(self.form.fields) >= self._max_fields:
            raise _malformed(f"too many fields; at most {self._max_fields}")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        part = self._part
        part.data += data[start:end]
        if not part.is_file and len(part.data) > MAX_FIELD_BYTES:
            raise _malformed(
                f"multipart field {part.name!r} is larger than {MAX_FIELD_BYTES} bytes",
                param=part.name,
            )

    def on_part_end(self) -> None:
        part = self._part
        if part.is_file:
            self.form.files.append((part.name, bytes(part.data)))
        else:
            value = _utf8(part.data, f"multipart field {part.name!r}", param=part.name)
            self.form.fields.append((part.name, value))
        self._part = _Part()

    def on_end(self) -> None:
        self.ended = True


async def read_multipart(
    content_type: str, stream: AsyncIterator[bytes], *, max_files: int, max_fields: int
) -> FormBody:
    """A ``multipart/form-data`` body, complete up to its closing boundary."""
    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise _malformed("the multipart Content-Type has no boundary")
    collector = _Collector(max_files=max_files, max_fields=max_fields)
    try:
        parser = MultipartParser(
            boundary,
            {
                "on_part_begin": collector.on_part_begin,
                "on_part_data": collector.on_part_data,
                "on_part_end": collector.on_part_end,
                "on_header_field": collector.on_header_field,
                "on_header_value": collector.on_header_value,
                "on_header_end": collector.on_header_end,
                "on_headers_finished": collector.on_headers_finished,
                "on_end": collector.on_end,
            },
        )
        async for chunk in stream:
            parser.write(chunk)
        parser.finalize()
    except FormParserError as exc:
        raise _malformed(f"malformed multipart body: {exc}") from exc
    if not collector.ended:
        # python-multipart's finalize() does not check this: without the closing
        # boundary, the last part may be cut short (a truncated upload).
        raise _malformed("the multipart body ends before its closing boundary (truncated?)")
    return collector.form


def read_urlencoded(raw: bytes, *, max_fields: int) -> FormBody:
    """An ``application/x-www-form-urlencoded`` body; names and values strict UTF-8."""
    text = _utf8(raw, "the form body")
    try:
        pairs = parse_qsl(
            text,
            keep_blank_values=True,
            encoding="utf-8",
            errors="strict",
            max_num_fields=max_fields,
        )
    except UnicodeDecodeError as exc:
        raise _malformed("a form field is not valid UTF-8 once percent-decoded") from exc
    except ValueError as exc:  # more than max_fields
        raise _malformed(f"too many fields; at most {max_fields}") from exc
    return FormBody(fields=pairs)
