"""The rest of a long answer, waiting for the user to text "more".

Kept per number for as long as conversation context lives; a new answer replaces the old pages.
In memory by default; a shared store can implement `PageStore` for several instances.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

Clock = Callable[[], float]


class InMemoryPageStore:
    def __init__(self, ttl_s: float = 900, max_users: int = 10_000, clock: Clock = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self.max_users = max_users
        self._clock = clock
        self._pages: OrderedDict[str, tuple[float, list[str]]] = OrderedDict()
        self._lock = threading.Lock()

    async def keep(self, user: str, pages: Sequence[str]) -> None:
        with self._lock:
            if not pages:
                self._pages.pop(user, None)
                return
            self._pages[user] = (self._clock() + self.ttl_s, list(pages))
            self._pages.move_to_end(user)
            while len(self._pages) > self.max_users:
                self._pages.popitem(last=False)

    async def next(self, user: str) -> tuple[str, int] | None:
        with self._lock:
            item = self._pages.get(user)
            if item is None or item[0] <= self._clock() or not item[1]:
                self._pages.pop(user, None)
                return None
            page = item[1].pop(0)
            if not item[1]:
                del self._pages[user]
            return page, len(item[1])
