"""Whether this process holds a lease now: asked before each round of the work only one process of a
deployment may do (evaluating rules, stepping escalations, recording health), with one log line each
time the answer changes."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bot.state.protocols import Lease, StoreUnavailable


@dataclass
class LeaseHolding:
    lease: Lease
    log: logging.Logger
    taken: str
    """Logged when this process takes the lease."""
    lost: str
    """Logged when it no longer holds it."""
    holding: bool = False

    async def check(self) -> bool:
        """True while this process holds the lease. A shared store that cannot answer counts as not held:
        without it nobody can be sure to be the only one."""
        try:
            held = await self.lease.hold()
        except StoreUnavailable:
            held = False
        if held != self.holding:
            self.holding = held
            self.log.info(self.taken if held else self.lost)
        return held
