"""Work that outlives the request that started it: a deferred answer sent later by the REST API, alert
texts sent after Alertmanager got its 202.

Each task is kept until it ends, so it is not garbage-collected mid-flight (asyncio holds only a weak
reference to a running task) and shutdown can wait for all of them (`drain`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any


class Background:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for every task started so far (at shutdown; in tests). A task's failure is its own to log."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def __len__(self) -> int:
        return len(self._tasks)
