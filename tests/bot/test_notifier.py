"""The notifier's order and counts: texts to one number leave in the order their budget was taken (a
storm's summary never overtakes a text still being sent), and alerts a source left out of its payload
count in the storm summary as they do in the text."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bot.alerting.model import AlertEvent, Notification, Severity
from bot.alerting.notifier import Notifier
from bot.settings import Settings
from bot.sms.outbound import Delivery
from bot.sms.privacy import mask_number
from bot.state.memory.subscriptions import InMemorySubscriptions
from bot.state.stores import local_stores
from tests.bot.appserver import ALICE, BOB, settings_for


@dataclass
class SlowFirstSender:
    """Twilio's API as a `Sender`: each number's first text takes `first_s` to be accepted, the rest none.
    `accepted` is the order Twilio accepted them in, which is the order they reach the phone."""

    first_s: float = 0.2
    accepted: list[tuple[str, str]] = field(default_factory=list)
    _seen: set[str] = field(default_factory=set)

    async def send(self, to: str, body: str, media_urls: Sequence[str] = ()) -> Delivery:
        first = to not in self._seen
        self._seen.add(to)
        await asyncio.sleep(self.first_s if first else 0)
        self.accepted.append((to, body))
        return Delivery(mask_number(to), f"SM{len(self.accepted):032x}", "queued", 1)


def firing(group: str, *names: str, truncated: int = 0) -> Notification:
    alerts = tuple(
        AlertEvent(f"{group}-{n}", name, {"alertname": name, "instance": f"{group}{n}:9100"}, "firing",
                   Severity.CRITICAL, starts_at=datetime(2026, 11, 21, 23, 0, tzinfo=UTC))
        for n, name in enumerate(names)
    )  # fmt: skip
    extra = {"truncated_alerts": str(truncated)} if truncated else {}
    return Notification("alertmanager", group, "firing", alerts, delivery_key=group, extra=extra)


def notifier(settings: Settings, sender: SlowFirstSender) -> Notifier:
    stores = local_stores(settings)
    return Notifier(settings, stores.alerts, stores.contexts, InMemorySubscriptions(), sender,
                    budget=stores.budget, dedup=stores.dedup)  # fmt: skip


def test_the_storm_summary_leaves_after_the_texts_it_summarizes(tmp_path: Path) -> None:
    """The first text is slow to be accepted; the next notification, already over the budget, gets the
    summary: it waits for the text before it to the same number."""
    sender = SlowFirstSender()
    bot = notifier(settings_for(tmp_path, "alert_budget_texts: 2\n"), sender)

    async def storm() -> None:
        await asyncio.gather(bot.handle(firing("a", "DiskFull")), bot.handle(firing("b", "HighCPU")))

    asyncio.run(storm())
    for number in (ALICE, BOB):
        mine = [body for to, body in sender.accepted if to == number]
        assert len(mine) == 2
        assert mine[0].startswith("FIRING 1 critical: DiskFull")
        assert mine[1].startswith("Alert storm: 1 more alert (HighCPU 1)")


def test_other_numbers_do_not_wait_for_a_slow_one(tmp_path: Path) -> None:
    sender = SlowFirstSender(first_s=0.3)
    bot = notifier(settings_for(tmp_path), sender)

    async def two() -> float:
        await bot.handle(firing("a", "DiskFull"))  # both numbers' first (slow) texts
        loop = asyncio.get_running_loop()
        started = loop.time()
        await bot.handle(firing("b", "HighCPU"))
        return loop.time() - started

    assert asyncio.run(two()) < 0.25  # the second texts go out at once, to both numbers at the same time
    assert [to for to, _ in sender.accepted].count(ALICE) == 2


def test_alerts_left_out_of_a_payload_count_in_the_storm_summary(tmp_path: Path) -> None:
    async def summary(over_budget: Notification) -> str:
        sender = SlowFirstSender(first_s=0)
        bot = notifier(settings_for(tmp_path, "alert_budget_texts: 2\n"), sender)
        await bot.handle(firing("a", "DiskFull"))
        await bot.handle(over_budget)
        mine = [body for to, body in sender.accepted if to == ALICE]
        assert len(mine) == 2
        return mine[1]

    one_name = asyncio.run(summary(firing("b", "HighCPU", "HighCPU", truncated=998)))
    assert one_name.startswith("Alert storm: 1000 more alerts (HighCPU 1000) not texted.")  # under its name
    mixed = asyncio.run(summary(firing("c", "Mixed1", "Mixed2", truncated=7)))
    assert mixed.startswith("Alert storm: 9 more alerts (Mixed1 1, Mixed2 1) not texted.")  # counted, unnamed
