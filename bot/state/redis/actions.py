"""Silences waiting for their code, and undoable writes, in Redis."""

from __future__ import annotations

import secrets
import time
from typing import Literal

from redis.asyncio import Redis

from bot.alerting.model import Done, Proposal
from bot.state.redis.client import DEFAULT_PREFIX, KEY_MARGIN_MS, Clock, guarded, ms, text_of
from bot.state.redis.codecs import done_from, done_json, proposal_from, proposal_json

_PROPOSAL_ACCEPT = """
-- KEYS[1] the user's proposal (hash: code, at, body); ARGV[1] now, ARGV[2] ttl seconds, ARGV[3] code,
-- ARGV[4] '1' to take it only if ARGV[3] is its code, '0' to withdraw it whatever its code.
-- Returns the proposal's JSON when a fresh one was taken.
local p = redis.call('HMGET', KEYS[1], 'code', 'at', 'body')
if not p[1] then return false end
if tonumber(ARGV[1]) - tonumber(p[2]) > tonumber(ARGV[2]) then
  redis.call('DEL', KEYS[1])
  return false
end
if ARGV[4] == '1' and ARGV[3] ~= p[1] then return false end
redis.call('DEL', KEYS[1])
return p[3]
"""


class RedisActions:
    """Silences waiting for "Y <code>" and the last write each person may undo, for every instance.

    As `bot.state.memory.actions.Actions`: a new proposal replaces the old one; a code works once, within
    `proposal_ttl_s` (accept takes the proposal in one script, so two instances cannot both act on it);
    `withdraw` drops it whatever its code; a done write can be undone once within `undo_window_s`.
    """

    def __init__(
        self, client: Redis, proposal_ttl_s: float = 300.0, undo_window_s: float = 300.0, *,
        prefix: str = DEFAULT_PREFIX, clock: Clock = time.time,
    ) -> None:  # fmt: skip
        self.proposal_ttl_s = proposal_ttl_s
        self.undo_window_s = undo_window_s
        self._client = client
        self._clock = clock
        self._proposals = f"{prefix}proposal:"
        self._done = f"{prefix}undo:"
        self._accept = client.register_script(_PROPOSAL_ACCEPT)

    @guarded
    async def propose(self, user: str, fingerprint: str, description: str, duration_s: int, text: str) -> Proposal:
        """On StoreUnavailable: nothing is pending; tell the person the silence cannot be set up now."""
        proposal = Proposal(f"{secrets.randbelow(9000) + 1000}", fingerprint, description, duration_s, text,
                            self._clock())  # fmt: skip
        key = self._proposals + user
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={"code": proposal.code, "at": repr(proposal.at), "body": proposal_json(proposal)})
            pipe.pexpire(key, ms(self.proposal_ttl_s) + KEY_MARGIN_MS)
            await pipe.execute()
        return proposal

    @guarded
    async def accept(self, user: str, code: str) -> Proposal | None:
        """On StoreUnavailable: nothing was taken or done; tell the person to reply again shortly."""
        return await self._take(user, code)

    @guarded
    async def withdraw(self, user: str) -> Proposal | None:
        """On StoreUnavailable: the proposal may still be pending; only its code (within its TTL) acts on it."""
        return await self._take(user, None)

    async def _take(self, user: str, code: str | None) -> Proposal | None:
        body = await self._accept(keys=[self._proposals + user],
                                  args=[repr(self._clock()), repr(float(self.proposal_ttl_s)), code or "",
                                        "0" if code is None else "1"])  # fmt: skip
        return None if body is None else proposal_from(body)

    @guarded
    async def pending_code(self, user: str) -> str | None:
        """On StoreUnavailable: unknown; treat as none pending."""
        code, at = await self._client.hmget(self._proposals + user, ["code", "at"])
        if code is None or at is None or self._clock() - float(text_of(at)) > self.proposal_ttl_s:
            return None
        return text_of(code)

    async def done(
        self, user: str, kind: Literal["silence", "ack"], fingerprint: str, description: str,
        silence_id: str | None = None,
    ) -> Done:  # fmt: skip
        """Remember a write `user` may undo. On StoreUnavailable: the write happened but cannot be undone by
        "undo"; say so (the silence id still ends it)."""
        done = Done(kind, fingerprint, description, self._clock(), silence_id)
        await self.keep(user, done)
        return done

    @guarded
    async def keep(self, user: str, done: Done) -> None:
        """On StoreUnavailable: as `done`."""
        await self._client.set(self._done + user, done_json(done), px=ms(self.undo_window_s) + KEY_MARGIN_MS)

    @guarded
    async def undoable(self, user: str) -> Done | None:
        """The last write if within the window (taken: undo works once). On StoreUnavailable: unknown;
        tell the person undo is unavailable now (not "nothing to undo")."""
        body = await self._client.getdel(self._done + user)
        if body is None:
            return None
        done = done_from(body)
        return None if self._clock() - done.at > self.undo_window_s else done
