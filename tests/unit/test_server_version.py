"""vidgate refuses a PostgreSQL older than 14 before migrating, saying which it is."""

from __future__ import annotations

import pytest

from vidgate.db.migrate import UnsupportedServer, require_supported


def test_postgresql_13_is_refused_with_its_version() -> None:
    with pytest.raises(UnsupportedServer) as caught:
        require_supported(130016, "13.16 (Debian 13.16-0+deb11u1)")
    message = str(caught.value)
    assert "PostgreSQL 14 or newer" in message
    assert "13.16 (Debian 13.16-0+deb11u1)" in message


@pytest.mark.parametrize("version_num", [140000, 150018, 180001])
def test_postgresql_14_and_newer_are_accepted(version_num: int) -> None:
    require_supported(version_num, "x")
