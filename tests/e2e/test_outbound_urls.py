"""Malformed image and webhook URLs are a 400 naming the field at create, never a 500."""

from __future__ import annotations

import httpx
import pytest
from tests.conftest import ServerProcess

MALFORMED = [
    "https://[::1/hook",
    "https://[1.2.3.4]/hook",
    "https://example.com:abc/hook",
    "https://example.com/a\x7fb",
    "https://example.com/a b",
    "https://exa\u200bmple.com/",
    "https://[fe80::1%25eth0]/",
    "https://0x7f.1/",
]


@pytest.mark.parametrize("url", MALFORMED)
@pytest.mark.parametrize("field", ["webhook_url", "image"])
def test_malformed_urls_are_refused_at_create(
    server: ServerProcess, key_a: str, url: str, field: str
) -> None:
    response = httpx.post(
        f"{server.base_url}/v1/videos/generations",
        headers={"Authorization": f"Bearer {key_a}"},
        json={"model": "sandbox", "prompt": "x", "duration": 1, field: url},
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == field and error["type"] == "invalid_request_error"
    # In words (another check at the edge may be the one that speaks first).
    assert "Error" not in error["message"]
