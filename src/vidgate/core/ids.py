"""Identifiers: a type prefix and 26 Crockford base32 characters, time-ordered.

The first 10 characters encode the creation time in milliseconds, so sorting ids sorts
by creation and an id works as a pagination cursor.
"""

from __future__ import annotations

import os
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def new_id(prefix: str) -> str:
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    return f"{prefix}_{_encode(millis, 10)}{_encode(rand, 16)}"


def looks_like(prefix: str, value: str) -> bool:
    head, sep, body = value.partition("_")
    return sep == "_" and head == prefix and len(body) == 26 and set(body) <= set(_ALPHABET)


def id_floor(prefix: str, unix_s: float) -> str:
    """The smallest id of ``prefix`` made at ``unix_s`` or later (by its maker's clock)."""
    return f"{prefix}_{_encode(max(0, int(unix_s * 1000)), 10)}{'0' * 16}"
