"""Small stored files held in memory, so that serving one costs no disk access and no
worker-thread hop.

A download of a small video, a thumbnail or a spritesheet was mostly overhead: a
thread to open and stat the file, a mapping of it, a task watching for the client to
leave, for a body sent in one write. Blobs are content addressed and never rewritten
in place (media/storage.py), so a copy read once stays right for as long as it is
held; it is dropped least recently used first, past ``budget_bytes`` in all. A file
larger than ``max_file_bytes`` is remembered as such and streamed from disk as before.
"""

from __future__ import annotations

import os
import stat
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import anyio.to_thread

MAX_FILE_BYTES = 256 * 1024
BUDGET_BYTES = 32 * 1024 * 1024
# Paths remembered as too large (or not a file): a few bytes each.
_MAX_LARGE = 4096


@dataclass(frozen=True, slots=True)
class SmallFile:
    """A file's bytes and the ``stat`` they were read with (for its headers)."""

    data: bytes
    stat_result: os.stat_result


class SmallBlobs:
    def __init__(
        self, *, max_file_bytes: int = MAX_FILE_BYTES, budget_bytes: int = BUDGET_BYTES
    ) -> None:
        self.max_file_bytes = max_file_bytes
        self.budget_bytes = budget_bytes
        self._files: OrderedDict[Path, SmallFile] = OrderedDict()
        self._large: OrderedDict[Path, None] = OrderedDict()
        self._held = 0

    async def get(self, path: Path) -> SmallFile | None:
        """The file at ``path`` if it is small (read on first use); None when it is
        larger, missing or not a regular file (the caller serves it from disk)."""
        found = self._files.get(path)
        if found is not None:
            self._files.move_to_end(path)
            return found
        if path in self._large:
            return None
        read = await anyio.to_thread.run_sync(_read_small, path, self.max_file_bytes)
        if not isinstance(read, SmallFile):
            if read == "large":  # not worth asking again; a missing file may yet appear
                self._large[path] = None
                if len(self._large) > _MAX_LARGE:
                    self._large.popitem(last=False)
            return None
        if path not in self._files:
            self._files[path] = read
            self._held += len(read.data)
            while self._held > self.budget_bytes and self._files:
                _, dropped = self._files.popitem(last=False)
                self._held -= len(dropped.data)
        return read


def _read_small(path: Path, limit: int) -> SmallFile | Literal["large", "missing"]:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return "missing"
    try:
        stat_result = os.fstat(fd)
        if not stat.S_ISREG(stat_result.st_mode) or stat_result.st_size > limit:
            return "large"
        data = os.pread(fd, stat_result.st_size, 0)
    except OSError:
        return "missing"
    finally:
        os.close(fd)
    return SmallFile(data, stat_result) if len(data) == stat_result.st_size else "missing"
