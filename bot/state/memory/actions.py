"""Writes waiting for "Y <code>", and the last write each person can still undo, in this process's memory.

A silence is echoed back first ("Silence HighCPU{service=checkout} for 1h? Reply Y 4821") so a
sloppy text cannot mute the wrong thing; the code ties the "Y" to that exact proposal, and the
conversation withdraws the proposal when the person says no or texts anything else. Done writes are
kept a few minutes for "undo".
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from typing import Literal

from bot.alerting.model import Done, Proposal

Clock = Callable[[], float]


class Actions:
    def __init__(self, proposal_ttl_s: float = 300.0, undo_window_s: float = 300.0, clock: Clock = time.time) -> None:
        self.proposal_ttl_s = proposal_ttl_s
        self.undo_window_s = undo_window_s
        self._clock = clock
        self._proposals: dict[str, Proposal] = {}
        self._done: dict[str, Done] = {}
        self._lock = threading.Lock()

    async def propose(self, user: str, fingerprint: str, description: str, duration_s: int, text: str) -> Proposal:
        """Remember what "Y <code>" from `user` will do; a new proposal replaces an older one."""
        proposal = Proposal(f"{secrets.randbelow(9000) + 1000}", fingerprint, description, duration_s, text,
                            self._clock())  # fmt: skip
        with self._lock:
            self._proposals[user] = proposal
        return proposal

    async def accept(self, user: str, code: str) -> Proposal | None:
        """The proposal `code` answers (taken: a code works once), or None if none matches or it expired.

        A code is required: a bare "yes" never acts on a write (it may answer another question)."""
        with self._lock:
            proposal = self._proposals.get(user)
            if proposal is None or self._clock() - proposal.at > self.proposal_ttl_s:
                self._proposals.pop(user, None)
                return None
            if code != proposal.code:
                return None
            return self._proposals.pop(user)

    async def withdraw(self, user: str) -> Proposal | None:
        """Drop the user's pending proposal (they said no, or moved on); the proposal if one was fresh."""
        with self._lock:
            proposal = self._proposals.pop(user, None)
            return proposal if proposal is not None and self._clock() - proposal.at <= self.proposal_ttl_s else None

    async def pending_code(self, user: str) -> str | None:
        with self._lock:
            proposal = self._proposals.get(user)
            return proposal.code if proposal and self._clock() - proposal.at <= self.proposal_ttl_s else None

    async def done(
        self, user: str, kind: Literal["silence", "ack"], fingerprint: str, description: str,
        silence_id: str | None = None,
    ) -> Done:  # fmt: skip
        """Remember a write `user` may undo for the next `undo_window_s`."""
        done = Done(kind, fingerprint, description, self._clock(), silence_id)
        await self.keep(user, done)
        return done

    async def keep(self, user: str, done: Done) -> None:
        """Put back a write whose undo failed, so the user can retry."""
        with self._lock:
            self._done[user] = done

    async def undoable(self, user: str) -> Done | None:
        """The user's last write if still within the undo window (taken: undo works once)."""
        with self._lock:
            done = self._done.pop(user, None)
            if done is None or self._clock() - done.at > self.undo_window_s:
                return None
            return done
