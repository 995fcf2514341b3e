"""Where each user's conversation context lives between texts.

The parser reads a `Context` and says what the next one is; this module only keeps them: per phone
number, expiring after a quiet period, bounded in number. `ContextStore` is the interface the rest
of the bot uses, so a shared store (Redis) can replace the in-memory one without other changes.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from intents.models import Context

Clock = Callable[[], float]


class InMemoryContextStore:
    """Contexts in one process: least recently used dropped first, each expiring `ttl_s` after last use.

    A lock guards the map, so the store is safe when the app runs handlers in threads as well as
    on the event loop; no operation awaits while holding it.
    """

    def __init__(self, ttl_s: float = 900.0, max_users: int = 10_000, clock: Clock = time.monotonic) -> None:
        if ttl_s <= 0 or max_users <= 0:
            raise ValueError("ttl_s and max_users must be positive")
        self.ttl_s = ttl_s
        self.max_users = max_users
        self._clock = clock
        self._items: OrderedDict[str, tuple[float, Context]] = OrderedDict()
        self._lock = threading.Lock()

    async def get(self, user: str) -> Context:
        return self.get_now(user)

    async def put(self, user: str, context: Context) -> None:
        self.put_now(user, context)

    async def clear(self, user: str) -> None:
        with self._lock:
            self._items.pop(user, None)

    def get_now(self, user: str) -> Context:
        """The synchronous form of `get`, for callers without an event loop (the batch tool)."""
        now = self._clock()
        with self._lock:
            item = self._items.get(user)
            if item is None:
                return Context()
            expires, context = item
            if expires <= now:
                del self._items[user]
                return Context()
            return context

    def put_now(self, user: str, context: Context) -> None:
        now = self._clock()
        with self._lock:
            if context.empty:
                self._items.pop(user, None)
                return
            self._items[user] = (now + self.ttl_s, context)
            self._items.move_to_end(user)
            # Entries are in order of last write, which is also order of expiry: drop from the front.
            while self._items and (len(self._items) > self.max_users or next(iter(self._items.values()))[0] <= now):
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)
