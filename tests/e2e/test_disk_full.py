"""A full disk: an upload is answered 507 ``storage_full``, a job whose result cannot
be stored fails with ``storage_full`` (not an opaque internal error), and once space
is freed the same server stores uploads and completes jobs again.

The server's data directory is a small tmpfs, mounted by the test (root only); its
database lives elsewhere (the session's PostgreSQL), as it would on a real host whose
media volume filled up.
"""

from __future__ import annotations

import base64
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import ServerProcess, fast_env, make_database, png_bytes

pytestmark = pytest.mark.slow

TMPFS_BYTES = 8 * 1024 * 1024


def _mount_tmpfs(path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_BYTES},mode=0755", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")


def _fill(path: Path) -> None:
    """Write ``path`` until the file system has no space left."""
    with path.open("wb") as out:
        try:
            while True:
                out.write(b"\0" * (256 * 1024))
                out.flush()
        except OSError:
            pass


@pytest.fixture
def small_disk(pg_server: str, tmp_path: Path) -> Iterator[ServerProcess]:
    data_dir = tmp_path / "vidgate"
    data_dir.mkdir()
    _mount_tmpfs(data_dir)
    srv = ServerProcess(
        data_dir=data_dir,
        env=fast_env(
            VIDGATE_DATABASE_URL=make_database(pg_server),
            # Give up on a job soon, so the test sees its final state quickly.
            VIDGATE_MAX_STEP_ATTEMPTS="2",
        ),
    )
    try:
        srv.start()
        yield srv
    finally:
        srv.stop()
        subprocess.run(["umount", "-l", str(data_dir)], check=False)


def _wait(client: httpx.Client, video_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        video: dict[str, Any] = client.get(f"/v1/videos/{video_id}").json()
        if video["status"] in ("completed", "failed"):
            return video
        assert time.monotonic() < deadline, video
        time.sleep(0.2)


def test_full_disk_is_reported_in_words_and_the_server_recovers(
    small_disk: ServerProcess,
) -> None:
    key = small_disk.create_key("disk")
    client = httpx.Client(
        base_url=small_disk.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30
    )
    filler = small_disk.data_dir / "filler"
    image = png_bytes(64, 48, (0, 128, 255))
    data_url = "data:image/png;base64," + base64.b64encode(image).decode()
    with client:
        _fill(filler)

        upload = client.post(
            "/v1/videos",
            data={"model": "sandbox", "prompt": "full", "seconds": "1"},
            files={"input_reference": ("in.png", image, "image/png")},
        )
        assert upload.status_code == 507, upload.text
        error = upload.json()["error"]
        assert error["code"] == "storage_full" and error["type"] == "server_error"
        assert "full" in error["message"]
        task = client.post(
            "/v1/videos/generations",
            json={"model": "sandbox", "prompt": "full", "duration": 1, "image": data_url},
        )
        assert task.status_code == 507, task.text

        job = client.post(
            "/v1/videos", json={"model": "sandbox", "prompt": "no room", "seconds": 1}
        )
        assert job.status_code == 200, job.text
        failed = _wait(client, job.json()["id"])
        assert failed["status"] == "failed"
        assert failed["error"]["code"] == "storage_full", failed
        assert "OSError" not in failed["error"]["message"]

        filler.unlink()

        again = client.post(
            "/v1/videos",
            data={"model": "sandbox", "prompt": "room again", "seconds": "1"},
            files={"input_reference": ("in.png", image, "image/png")},
        )
        assert again.status_code == 200, again.text
        done = _wait(client, again.json()["id"])
        assert done["status"] == "completed", done
        content = client.get(f"/v1/videos/{done['id']}/content")
        assert content.status_code == 200 and content.content[4:8] == b"ftyp"
    assert "api.unhandled_error" not in small_disk.log()
