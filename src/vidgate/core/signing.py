"""Signed links: expiring download links that a plain GET with no auth header can
fetch, and the callback URLs handed to upstream providers.

A download signature covers the video id, the variant, the output index and the expiry,
so a link grants exactly one file until it expires and cannot be turned into another.

A callback signature covers the job id and the variant ``callback`` and has no expiry
(an upstream task may run for hours). It grants nothing but a hint: a callback makes
vidgate read that job's upstream status early (api/routes/callbacks.py).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from urllib.parse import quote, urlencode

# Signatures of input links use this variant, so they never open an output and back.
INPUT_VARIANT = "input"
# ... and those of callback URLs this one: never a download link, and no expiry.
CALLBACK_VARIANT = "callback"


# How long links made one after the other stay the same URL, as a share of their
# lifetime: a browser's cache then serves a thumbnail again instead of fetching it under
# a new URL (the console lists the same gallery many times), at the price of links
# lasting up to that much longer than the TTL.
_STEP_SHARE = 12
_MAX_STEP_S = 300


class UrlSigner:
    def __init__(self, key: bytes, ttl_s: int) -> None:
        self._key = key
        self.ttl_s = ttl_s
        self._step_s = max(1, min(ttl_s // _STEP_SHARE, _MAX_STEP_S))

    def expiry(self) -> int:
        """When a link made now expires: at least ``ttl_s`` from now, rounded up to a
        multiple of the step (a twelfth of the TTL, at most 5 minutes)."""
        at = int(time.time()) + self.ttl_s
        return -(-at // self._step_s) * self._step_s

    def _signature(self, video_id: str, variant: str, index: int, expires: int) -> str:
        message = f"{video_id}\n{variant}\n{index}\n{expires}".encode()
        digest = hmac.new(self._key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def sign(self, base_url: str, video_id: str, variant: str, index: int) -> tuple[str, int]:
        expires = self.expiry()
        query = urlencode(
            {
                "variant": variant,
                "index": index,
                "expires": expires,
                "signature": self._signature(video_id, variant, index, expires),
            }
        )
        return f"{base_url.rstrip('/')}/v1/videos/{video_id}/content?{query}", expires

    def sign_input(self, base_url: str, sha256: str) -> str:
        """A link to a stored input image, for providers that only take URLs."""
        expires = self.expiry()
        signature = self._signature(sha256, INPUT_VARIANT, 0, expires)
        query = urlencode({"expires": expires, "signature": signature})
        return f"{base_url.rstrip('/')}/v1/inputs/{sha256}?{query}"

    def verify(self, video_id: str, variant: str, index: int, expires: int, signature: str) -> bool:
        if expires < time.time():
            return False
        expected = self._signature(video_id, variant, index, expires)
        # As bytes: compare_digest raises on a str with non-ASCII characters.
        return hmac.compare_digest(expected.encode(), signature.encode())

    def sign_callback(self, base_url: str, job_id: str) -> str:
        """The URL an upstream calls when the job's task changes state."""
        query = urlencode({"signature": self._callback_signature(job_id)})
        return f"{base_url.rstrip('/')}/v1/callbacks/{quote(job_id, safe='')}?{query}"

    def verify_callback(self, job_id: str, signature: str) -> bool:
        expected = self._callback_signature(job_id)
        return hmac.compare_digest(expected.encode(), signature.encode())

    def _callback_signature(self, job_id: str) -> str:
        # Expiry 0 never passes ``verify``, so this cannot double as a download link.
        return self._signature(job_id, CALLBACK_VARIANT, 0, 0)
