"""Result URLs a status read has just seen, kept for the fetch that follows.

A task that succeeds is fetched moments later, usually by the same worker: remembering
the URLs the successful status read returned saves one upstream read per job. The memory
is per adapter instance (one deployment), bounded in size and in age; a URL that is not
here (another worker, a restart, too old) is read from the upstream again, and an expired
one is the adapter's to refresh.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

# Enough for every job a worker finalizes at once, with room to spare.
MAX_ENTRIES = 256
# A fetch normally starts within seconds of the status read; after this the URLs may
# have been re-signed upstream, so a fresh read is worth its round trip.
TTL_S = 600.0


class ResultUrls:
    """Upstream task id -> result URLs, least recently seen dropped first."""

    def __init__(
        self,
        *,
        max_entries: int = MAX_ENTRIES,
        ttl_s: float = TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
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
