"""The ticker: runs the escalation steps that come due, in one process of the deployment at a time.

Every process runs the loop; only the one holding the rules lease ticks (the same holder evaluates the
rules and records backend health). When that process dies, another takes the lease once it lapses
(`rules_lease_s`) and carries on from the shared store: steps that came due meanwhile run then, none is
skipped, and a step whose runner died mid-way is finished by the next claim, without paging twice whom
it reached. Each pass reads only what is due (a sorted set in Redis, a heap in memory).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from bot.oncall.service import OnCall
from bot.state.holding import LeaseHolding
from bot.state.protocols import Lease

log = logging.getLogger(__name__)

TICK_S = 1.0
"""Steps run at most this late after they come due (waits as short as a few seconds are fine)."""


@dataclass
class Ticker:
    oncall: OnCall
    lease: Lease
    interval_s: float = TICK_S

    def __post_init__(self) -> None:
        self.holding = LeaseHolding(self.lease, log, "escalation ticker running here",
                                    "escalation ticker stopped here (lease lost)")  # fmt: skip

    async def tick(self) -> int:
        """One pass, if this process holds the lease: how many escalations it moved."""
        if not await self.holding.check():
            return 0
        return await self.oncall.tick()

    async def run(self, stop: asyncio.Event) -> None:
        """Tick every `interval_s` until `stop` is set. The outermost frame of a background task: a failed
        pass is logged (its kind) and the next one tries again."""
        while not stop.is_set():
            try:
                await self.tick()
            except Exception as exc:  # the outermost loop: one bad pass must not end paging
                log.error("escalation tick failed: %s", type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval_s):
                    await stop.wait()


@asynccontextmanager
async def ticking(oncall: OnCall, lease: Lease, interval_s: float = TICK_S) -> AsyncIterator[Ticker | None]:
    """The ticker for as long as the context lasts; nothing when no escalation policy is configured. The lease
    is not released here: it is the rules lease, and its owner releases it."""
    if not oncall.policies.paging:
        yield None
        return
    ticker = Ticker(oncall, lease, interval_s)
    stop = asyncio.Event()
    task = asyncio.ensure_future(ticker.run(stop))
    try:
        yield ticker
    finally:
        stop.set()
        await task
