"""Checks on URLs that vidgate itself fetches or calls (input images, webhooks).

Both are chosen by the client, so without a check a client could make the gateway reach
into its own private network (SSRF). Only https to public addresses passes, unless the
operator allows plain http and private hosts (tests, trusted networks).
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from vidgate.core.errors import InvalidParameter

MAX_URL_CHARS = 2048


def _resolves_public(host: str) -> bool:
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0]).is_global for info in infos)


def check_outbound_url(url: str, *, allow_insecure: bool, param: str, resolve: bool = True) -> None:
    """Raise ``InvalidParameter`` unless ``url`` may be fetched or called by the gateway.

    ``resolve=False`` skips the DNS lookup (syntax checks only), for request validation
    where the lookup happens again at call time anyway.
    """
    if len(url) > MAX_URL_CHARS:
        raise InvalidParameter(f"{param} is longer than {MAX_URL_CHARS} characters", param=param)
    parts = urlsplit(url)
    allowed = ("https", "http") if allow_insecure else ("https",)
    if parts.scheme not in allowed or not parts.hostname:
        raise InvalidParameter(
            f"{param} must be an absolute {' or '.join(s + '://' for s in allowed)} URL",
            param=param,
        )
    if not allow_insecure and resolve and not _resolves_public(parts.hostname):
        raise InvalidParameter(f"{param} does not resolve to a public address", param=param)
