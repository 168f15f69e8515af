"""The client side of ``vidgate generate``: create, poll with a progress bar, download."""

from __future__ import annotations

import base64
import mimetypes
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn


class GenerateError(Exception):
    pass


@dataclass(frozen=True)
class GenerateOptions:
    prompt: str
    model: str
    seconds: int | None
    size: str | None
    resolution: str | None
    aspect_ratio: str | None
    fps: int | None
    image: Path | None
    out: Path
    base_url: str
    api_key: str


def _body(options: GenerateOptions) -> dict[str, Any]:
    body: dict[str, Any] = {"model": options.model, "prompt": options.prompt}
    for key in ("seconds", "size", "resolution", "aspect_ratio", "fps"):
        value = getattr(options, key)
        if value is not None:
            body[key] = value
    if options.image is not None:
        if not options.image.is_file():
            raise GenerateError(f"no such image file: {options.image}")
        mime = mimetypes.guess_type(options.image.name)[0] or "image/png"
        data = base64.b64encode(options.image.read_bytes()).decode()
        body["input_reference"] = {"image_url": f"data:{mime};base64,{data}"}
    return body


def _check(response: httpx.Response) -> dict[str, Any]:
    if response.status_code >= 400:
        try:
            message = response.json()["error"]["message"]
        except Exception:
            message = response.text[:200]
        raise GenerateError(f"HTTP {response.status_code}: {message}")
    payload: dict[str, Any] = response.json()
    return payload


def run_generate(options: GenerateOptions, *, console: Console) -> str:
    headers = {"Authorization": f"Bearer {options.api_key}"}
    base = options.base_url.rstrip("/")
    try:
        with httpx.Client(base_url=base, headers=headers, timeout=60.0) as client:
            video = _check(client.post("/v1/videos", json=_body(options)))
            video_id = str(video["id"])
            with Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TaskProgressColumn(),
                TimeElapsedColumn(),
                console=console,
                transient=False,
            ) as progress:
                task = progress.add_task(f"{video_id} {video['status']}", total=100)
                while video["status"] in ("queued", "in_progress"):
                    response = client.get(f"/v1/videos/{video_id}")
                    video = _check(response)
                    progress.update(
                        task,
                        completed=video["progress"],
                        description=f"{video_id} {video['status']}",
                    )
                    if video["status"] in ("queued", "in_progress"):
                        wait_ms = int(response.headers.get("openai-poll-after-ms", "1000"))
                        time.sleep(max(0.1, wait_ms / 1000))
                progress.update(
                    task, completed=100 if video["status"] == "completed" else video["progress"]
                )
            if video["status"] != "completed":
                error = video.get("error") or {}
                raise GenerateError(
                    f"{video_id} {video['status']}: {error.get('message', 'unknown error')}"
                )
            options.out.parent.mkdir(parents=True, exist_ok=True)
            tmp = options.out.with_name(options.out.name + ".part")
            with client.stream("GET", f"/v1/videos/{video_id}/content") as stream:
                if stream.status_code >= 400:
                    stream.read()
                    _check(stream)
                with tmp.open("wb") as fh:
                    for chunk in stream.iter_bytes():
                        fh.write(chunk)
            tmp.replace(options.out)
            return video_id
    except httpx.HTTPError as exc:
        raise GenerateError(f"cannot reach the gateway at {base}: {exc}") from exc
