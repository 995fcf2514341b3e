"""Charts waiting for Twilio to fetch them, in this process's memory (see `bot.charts.media` for the tokens)."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

from bot.charts.media import Clock, check_media, new_token, valid_token


class InMemoryMediaStore:
    """Pictures in one process, each expiring `ttl_s` after it was put, oldest dropped first past `max_bytes`
    (or `max_items`, so a flood of tiny items cannot grow the map without bound).

    Every item lives the same TTL, so insertion order is also expiry order: expired items are always at the
    front. A lock guards the map, as in the other in-memory stores; nothing awaits while holding it.
    """

    def __init__(
        self, ttl_s: float, max_bytes: int = 64 * 2**20, max_items: int = 10_000, clock: Clock = time.monotonic
    ) -> None:
        if ttl_s <= 0 or max_bytes <= 0 or max_items <= 0:
            raise ValueError("ttl_s, max_bytes and max_items must be positive")
        self.ttl_s = ttl_s
        self.max_bytes = max_bytes
        self.max_items = max_items
        self._clock = clock
        self._items: OrderedDict[str, tuple[float, bytes, str]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    async def put(self, data: bytes, content_type: str = "image/png") -> str:
        """Raises ValueError for media larger than `max_bytes` (it would evict everything and still not fit)."""
        check_media(data, content_type)
        if len(data) > self.max_bytes:
            raise ValueError(f"media of {len(data)} bytes is over the store's {self.max_bytes}")
        token = new_token()
        with self._lock:
            self._drop_expired(self._clock())
            self._items[token] = (self._clock() + self.ttl_s, bytes(data), content_type)
            self._bytes += len(data)
            while self._bytes > self.max_bytes or len(self._items) > self.max_items:
                self._drop_oldest()
        return token

    async def get(self, token: str) -> tuple[bytes, str] | None:
        if not valid_token(token):
            return None
        with self._lock:
            item = self._items.get(token)
            if item is None:
                return None
            if item[0] <= self._clock():
                self._drop_expired(self._clock())
                return None
            return item[1], item[2]

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)

    def _drop_expired(self, now: float) -> None:
        while self._items and next(iter(self._items.values()))[0] <= now:
            self._drop_oldest()

    def _drop_oldest(self) -> None:
        _, (_, data, _) = self._items.popitem(last=False)
        self._bytes -= len(data)
