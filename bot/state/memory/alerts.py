"""Open alerts in this process's memory: by fingerprint, who acknowledged them, and what just resolved.

Alertmanager repeats an open alert's notification every `repeat_interval`; an acknowledged alert's
repeats are not texted again. Deliveries can arrive out of order (a retry of an old "firing" after
its "resolved"), so a resolved alert leaves a short-lived tombstone that lets a stale firing be
recognised by its start time and dropped.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from bot.alerting.model import AlertEvent, Changes, Notification, OpenAlert

Clock = Callable[[], float]


class AlertBook:
    """Open alerts in memory (`bot.state.redis.stores.RedisAlertBook` implements the same methods for several
    instances). Async so both can be used the same way."""

    def __init__(self, tombstone_s: float = 3600.0, max_alerts: int = 50_000, clock: Clock = time.time) -> None:
        self.tombstone_s = tombstone_s
        self.max_alerts = max_alerts
        self._clock = clock
        self._open: OrderedDict[str, OpenAlert] = OrderedDict()
        self._resolved: OrderedDict[str, tuple[float, datetime | None]] = OrderedDict()
        self._lock = threading.Lock()

    async def update(self, notification: Notification) -> Changes:
        now = self._clock()
        firing: list[AlertEvent] = []
        resolved: list[AlertEvent] = []
        quiet: list[AlertEvent] = []
        with self._lock:
            self._expire(now)
            for event in notification.alerts:
                known = self._open.get(event.fingerprint)
                if event.status == "resolved":
                    self._resolved[event.fingerprint] = (now, event.ends_at or event.starts_at)
                    self._resolved.move_to_end(event.fingerprint)
                    if known is not None:
                        del self._open[event.fingerprint]
                        resolved.append(event)
                    else:
                        quiet.append(event)  # never texted as firing here, or already resolved
                    continue
                if known is None and self._stale(event):
                    quiet.append(event)
                    continue
                if known is None:
                    self._open[event.fingerprint] = OpenAlert(event, now)
                    self._resolved.pop(event.fingerprint, None)
                    firing.append(event)
                else:
                    self._open[event.fingerprint] = replace(known, event=event)
                    (quiet if known.acked_by else firing).append(event)
                self._open.move_to_end(event.fingerprint)
            while len(self._open) > self.max_alerts:
                self._open.popitem(last=False)
        return Changes(tuple(firing), tuple(resolved), tuple(quiet))

    def _stale(self, event: AlertEvent) -> bool:
        """A firing delivery of an episode that already resolved (it started before that end)."""
        tomb = self._resolved.get(event.fingerprint)
        if tomb is None:
            return False
        ended = tomb[1]
        return ended is None or event.starts_at is None or event.starts_at <= ended

    def _expire(self, now: float) -> None:
        while self._resolved and next(iter(self._resolved.values()))[0] < now - self.tombstone_s:
            self._resolved.popitem(last=False)

    async def get(self, fingerprint: str) -> OpenAlert | None:
        with self._lock:
            return self._open.get(fingerprint)

    async def open_alerts(self) -> list[OpenAlert]:
        with self._lock:
            return list(self._open.values())

    async def by_name(self, name: str) -> list[OpenAlert]:
        wanted = name.lower()
        return [a for a in await self.open_alerts() if a.event.name.lower() == wanted]

    async def ack(self, fingerprint: str, who: str) -> OpenAlert | None:
        with self._lock:
            known = self._open.get(fingerprint)
            if known is None:
                return None
            acked = replace(known, acked_by=who, acked_at=self._clock())
            self._open[fingerprint] = acked
            return acked

    async def unack(self, fingerprint: str) -> bool:
        with self._lock:
            known = self._open.get(fingerprint)
            if known is None or known.acked_by is None:
                return False
            self._open[fingerprint] = replace(known, acked_by=None, acked_at=None)
            return True
