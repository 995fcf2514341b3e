"""Alert delivery state in this process's memory: repeated deliveries and each number's send budget."""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from bot.alerting.recipients import Clock, Decision


@dataclass
class _Texts:
    sent: deque[float] = field(default_factory=deque)
    """When each text in the window went out (sends and the summary)."""
    summary_at: float | None = None
    """When the summary went out, while the number is held."""


def check_budget(max_texts: int, window_s: float) -> None:
    """Refuse a budget that could never send the summary (the Redis budget applies the same rule)."""
    if max_texts < 2:
        raise ValueError("max_texts must be at least 2: one alert text and the summary")
    if window_s <= 0:
        raise ValueError("window_s must be positive")


class SendBudget:
    """At most `max_texts` alert texts to a number in any `window_s` seconds, the last one a summary.

    `take(number)` answers for each text the caller is about to send:
    - "send" while fewer than `max_texts - 1` texts went out in the last `window_s`;
    - "summary" once, when only the last text is left: send the storm summary instead (it counts what
      this text would have carried, and anything the caller is still holding);
    - "hold" after that, until the summary is `window_s` old: keep what would have been sent (for the
      history and the next summary), send nothing.
    So a storm of any size costs a number `max_texts` texts per window. In memory, per process, for one
    event loop (no lock): a restart forgets the window, and with several workers each has its own budget.
    """

    def __init__(
        self, max_texts: int, window_s: float, clock: Clock = time.monotonic, max_numbers: int = 10_000
    ) -> None:
        check_budget(max_texts, window_s)
        self.max_texts = max_texts
        self.window_s = window_s
        self._clock = clock
        self._max_numbers = max_numbers
        self._numbers: OrderedDict[str, _Texts] = OrderedDict()

    def take(self, number: str) -> Decision:
        now = self._clock()
        texts = self._numbers.pop(number, None) or _Texts()
        self._numbers[number] = texts  # most recently used last, so the idlest number is forgotten first
        if len(self._numbers) > self._max_numbers:
            self._numbers.popitem(last=False)
        while texts.sent and texts.sent[0] <= now - self.window_s:
            texts.sent.popleft()
        if texts.summary_at is not None:
            if texts.summary_at > now - self.window_s:
                return "hold"
            texts.summary_at = None
        texts.sent.append(now)
        if len(texts.sent) < self.max_texts:
            return "send"
        texts.summary_at = now
        return "summary"

    def holding(self, number: str) -> bool:
        """Whether texts to `number` are held now (a summary went out less than `window_s` ago)."""
        texts = self._numbers.get(number)
        return texts is not None and texts.summary_at is not None and texts.summary_at > self._clock() - self.window_s


class Deduplicator:
    """Remembers delivery keys for `ttl_s` seconds, at most `max_keys` of them (the oldest forgotten first).

    `seen(key)` is False the first time and True for a repeat within the TTL. Keep the TTL shorter than
    Alertmanager's `repeat_interval` (4 h by default): a reminder it sends on purpose has the same key as
    the first delivery and should go out. An empty key (a source without one) is never a repeat.
    """

    def __init__(self, ttl_s: float, max_keys: int = 100_000, clock: Clock = time.monotonic) -> None:
        if ttl_s <= 0 or max_keys < 1:
            raise ValueError("ttl_s must be positive and max_keys at least 1")
        self.ttl_s = ttl_s
        self.max_keys = max_keys
        self._clock = clock
        self._expiry: OrderedDict[str, float] = OrderedDict()

    def seen(self, key: str) -> bool:
        if not key:
            return False
        now = self._clock()
        while self._expiry:  # insertion order is expiry order: every key lives ttl_s from its first sighting
            oldest, expires = next(iter(self._expiry.items()))
            if expires > now:
                break
            del self._expiry[oldest]
        if key in self._expiry:
            return True
        self._expiry[key] = now + self.ttl_s
        if len(self._expiry) > self.max_keys:
            self._expiry.popitem(last=False)
        return False

    def __len__(self) -> int:
        return len(self._expiry)


class LocalDedup:
    def __init__(self, inner: Deduplicator) -> None:
        self.inner = inner

    async def seen(self, key: str) -> bool:
        return self.inner.seen(key)


class LocalBudget:
    def __init__(self, inner: SendBudget) -> None:
        self.inner = inner

    async def take(self, number: str) -> Decision:
        return self.inner.take(number)
