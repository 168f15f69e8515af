"""Result URLs: kept from a status read for the fetch that follows, and downloaded with
one refresh when they have expired.

A task that succeeds is fetched moments later, usually by the same worker: remembering
the URLs the successful status read returned saves one upstream read per job. The memory
is per adapter instance (one deployment), bounded in size and in age; a URL that is not
here (another worker, a restart, too old) is read from the upstream again.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from pathlib import Path

from vidgate.providers.base import ProgressCallback, ProviderError
from vidgate.providers.http import UpstreamClient

# Enough for every job a worker finalizes at once, with room to spare.
MAX_ENTRIES = 256
# A fetch normally starts within seconds of the status read; after this the URLs may
# have been re-signed upstream, so a fresh read is worth its round trip.
TTL_S = 600.0


class ResultUrls:
    """The result URLs of one deployment's tasks: remembered from a successful status
    read (task id -> URLs, least recently seen dropped first) and downloaded at fetch."""

    def __init__(
        self,
        client: UpstreamClient,
        *,
        gone: str,
        max_entries: int = MAX_ENTRIES,
        ttl_s: float = TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        # The message of result_expired, when no fresh URL replaces an expired one.
        self._gone = gone
        self._max = max_entries
        self._ttl_s = ttl_s
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, list[str]]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def remember(self, task_id: str, urls: list[str]) -> None:
        if not urls:
            return
        self._entries[task_id] = (self._clock() + self._ttl_s, urls)
        self._entries.move_to_end(task_id)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def take(self, task_id: str) -> list[str] | None:
        """The URLs remembered for the task, once; None when unknown or too old."""
        entry = self._entries.pop(task_id, None)
        if entry is None or entry[0] <= self._clock():
            return None
        return entry[1]

    def forget(self, task_id: str) -> None:
        self._entries.pop(task_id, None)

    async def download(
        self,
        task_id: str,
        dest_dir: Path,
        read: Callable[[], Awaitable[list[str]]],
        progress: ProgressCallback | None = None,
    ) -> list[Path]:
        """Download each result URL (the remembered ones, else ``read()``'s) into
        ``dest_dir/<index>.mp4``. At the first expired URL the task is read again and
        the downloads go on with the URLs it names now; an expired URL that comes back
        unchanged (or not at all), or a second expiry, is ``result_expired``."""
        urls = self.take(task_id) or await read()
        paths: list[Path] = []
        refreshed = False
        while len(paths) < len(urls):
            index = len(paths)
            dest = dest_dir / f"{index}.mp4"
            try:
                await self._client.download(urls[index], dest)
            except ProviderError as error:
                if not error.expired:
                    raise
                if not refreshed:
                    refreshed = True
                    renewed = await read()
                    if index < len(renewed) and renewed[index] != urls[index]:
                        urls = renewed
                        continue
                raise ProviderError(
                    "result_expired", self._gone, retryable=False, expired=True
                ) from error
            paths.append(dest)
            if progress is not None:
                progress(len(paths) / len(urls))
        return paths
