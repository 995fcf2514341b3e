"""The rules lease for one machine: an exclusive lock on a file, held by one process at a time."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


class FileLease:
    """An exclusive, non-blocking lock on a file, held until release or process death: the lease for the
    workers of one machine (several machines share a Redis lease instead)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    async def hold(self) -> bool:
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    async def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
