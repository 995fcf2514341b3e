"""Writing the audit history off the reply path: entries queue up and are stored in batches.

A database round trip per text (a SQLite commit, a PostgreSQL insert) would cost more than the
rest of the reply; batching keeps one write per few milliseconds however busy the bot is. The
queue is bounded: if the store is down long enough to fill it, entries are dropped (and counted)
rather than letting replies wait. `flush()` stores everything queued (at shutdown, in tests).
"""

from __future__ import annotations

import asyncio
import logging

from bot.db.database import DatabaseUnavailable
from bot.db.history import History, HistoryEntry

log = logging.getLogger(__name__)


class AuditWriter:
    def __init__(self, history: History, batch: int = 256, linger_s: float = 0.05, max_queued: int = 20_000) -> None:
        self.history = history
        self.batch = batch
        self.linger_s = linger_s
        self._queue: asyncio.Queue[HistoryEntry] = asyncio.Queue(max_queued)
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0
        self.failed = 0

    def add(self, entry: HistoryEntry) -> None:
        """Queue an entry; never waits. The writer task starts on first use."""
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())
        try:
            self._queue.put_nowait(entry)
        except asyncio.QueueFull:
            self.dropped += 1
            if self.dropped in (1, 10, 100) or self.dropped % 1000 == 0:
                log.error("history backlog full: %d entries dropped", self.dropped)

    async def flush(self) -> None:
        """Wait until everything queued so far is stored (or given up on)."""
        if self._task is not None and not self._task.done():
            await self._queue.join()

    async def close(self) -> None:
        await self.flush()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            first = await self._queue.get()
            await asyncio.sleep(self.linger_s)  # let a burst gather into one write
            batch = [first, *self._take(self.batch - 1)]
            try:
                await self._store(batch)
            finally:
                for _ in batch:
                    self._queue.task_done()

    def _take(self, limit: int) -> list[HistoryEntry]:
        entries: list[HistoryEntry] = []
        while len(entries) < limit and not self._queue.empty():
            entries.append(self._queue.get_nowait())
        return entries

    async def _store(self, entries: list[HistoryEntry]) -> None:
        if not entries:
            return
        try:
            await self.history.store(entries)
        except DatabaseUnavailable as exc:
            self.failed += len(entries)
            log.error("history unavailable, %d entries lost: %s", len(entries), exc)
