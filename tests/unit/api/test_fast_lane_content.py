"""Which downloads the edge answers itself (api/fast_lane.py): queries the route would read
the same way; everything else goes to the route."""

from __future__ import annotations

from typing import Any

import pytest

from vidgate.api.fast_lane import _content_query

VIDEO = "video_01abc"


def _scope(path: str, query: bytes = b"", method: str = "GET") -> dict[str, Any]:
    return {"method": method, "path": path, "query_string": query}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (b"", ("video", 0, None, None)),
        (b"variant=thumbnail&index=3", ("thumbnail", 3, None, None)),
        (b"index=07", ("video", 7, None, None)),
        (b"index=%36%33", ("video", 63, None, None)),  # decoded, as the route decodes
        (b"expires=1700000000&signature=a-b_c", ("video", 0, 1700000000, "a-b_c")),
        (b"signature=", ("video", 0, None, "")),
    ],
)
def test_plain_downloads_are_taken(
    query: bytes, expected: tuple[str, int, int | None, str | None]
) -> None:
    found = _content_query(_scope(f"/v1/videos/{VIDEO}/content", query))
    assert found is not None and found.video_id == VIDEO
    assert (found.variant, found.index, found.expires, found.signature) == expected


@pytest.mark.parametrize(
    "query",
    [
        b"index=64",  # the route's 400
        b"index=-1",
        b"index=+1",
        b"index=",
        b"index=1&index=2",
        b"variant=poster",  # the route's 400 names the variants
        b"expires=soon&signature=x",
        b"via=route",  # unknown names: the route decides
        b"index=063",  # more digits than the range needs: left to the route
        b"a=%ff",
    ],
)
def test_other_queries_go_to_the_route(query: bytes) -> None:
    assert _content_query(_scope(f"/v1/videos/{VIDEO}/content", query)) is None


@pytest.mark.parametrize(
    ("path", "method"),
    [
        (f"/v1/videos/{VIDEO}/content", "HEAD"),
        ("/v1/videos/generations/content", "GET"),
        (f"/v1/videos/{VIDEO}/x/content", "GET"),
        (f"/v1/videos/{VIDEO}", "GET"),
    ],
)
def test_other_paths_and_methods_go_to_the_route(path: str, method: str) -> None:
    assert _content_query(_scope(path, method=method)) is None
