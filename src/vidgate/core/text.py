"""The characters a client's text may hold.

Every string a client sends ends up in PostgreSQL, a provider request, a log line or an
HTTP header. PostgreSQL refuses NUL in text, and control characters or lone surrogates
(which no UTF-8 encoder accepts) are never part of a real prompt, id or URL, so text
holding them is refused where it enters, with the parameter named. Prompts keep tab,
newline and carriage return, which people do type; every other field is one line.

``api/schemas.py`` applies these rules to every request field (its annotated string
types); ``core/spec.py`` applies them again to what it stores, for callers other than
the API.
"""

from __future__ import annotations

import re

from vidgate.core.errors import InvalidParameter

# C0 controls, DEL, C1 controls (Unicode category Cc) and surrogates (Cs).
_LINE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_MULTILINE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")

LINE_ALLOWED = "text without control characters"
MULTILINE_ALLOWED = "text without control characters other than tab, newline and carriage return"


def forbidden_character(value: str, *, multiline: bool = False) -> str | None:
    """What is wrong with ``value`` in words (its first forbidden character), or None."""
    match = (_MULTILINE if multiline else _LINE).search(value)
    if match is None:
        return None
    code = ord(match.group())
    kind = "a lone surrogate" if 0xD800 <= code <= 0xDFFF else "a control character"
    return f"contains {kind} (U+{code:04X}) at position {match.start()}"


def allowed(*, multiline: bool = False) -> str:
    return MULTILINE_ALLOWED if multiline else LINE_ALLOWED


def check_text(value: str, *, param: str, what: str | None = None, multiline: bool = False) -> str:
    """``value`` unchanged, or ``InvalidParameter`` naming ``param`` (``what`` in the
    message when it is more precise, such as "metadata key")."""
    reason = forbidden_character(value, multiline=multiline)
    if reason is not None:
        raise InvalidParameter(
            f"{what or param} {reason}; allowed: {allowed(multiline=multiline)}", param=param
        )
    return value
