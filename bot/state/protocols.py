"""The shared state of a running bot, as interfaces: one process keeps it in memory (the embedded
default); several processes behind a load balancer keep it in Redis (`bot.state.redis.stores`).

Every piece that decides something per user or per message lives behind one of these, so that which
process receives a webhook never changes the answer: conversation context, "more" pages, rate
limits, MessageSid idempotency, alert deduplication, send budgets, open alerts and acks, pending
silences and undo, and the lease on rule evaluation. The in-memory implementations are in
`bot.state.memory`, the Redis ones in `bot.state.redis`; the same tests run against both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal, Protocol

from bot.alerting.model import Changes, Done, Notification, OpenAlert, Proposal
from bot.oncall.escalation import Event, Timeline
from bot.oncall.schedules import Override
from intents.models import Context

DEDUP_TTL_S = 600.0
"""Shorter than Alertmanager's repeat_interval (4 h by default): its retries are dropped, its reminders are not."""

Decision = Literal["send", "summary", "hold"]


class StoreUnavailable(Exception):
    """The shared store cannot be reached; the message is short and safe (never its URL)."""


class ReplyPending(StoreUnavailable):
    """Another instance owns this MessageSid and has not answered in time: answer nothing, it will."""


class DedupStore(Protocol):
    async def seen(self, key: str) -> bool:
        """False the first time `key` is offered (and remember it); True for a repeat within the TTL."""
        ...


class BudgetStore(Protocol):
    async def take(self, number: str) -> Decision: ...


class AlertStore(Protocol):
    async def update(self, notification: Notification) -> Changes: ...

    async def get(self, fingerprint: str) -> OpenAlert | None: ...

    async def open_alerts(self) -> list[OpenAlert]: ...

    async def by_name(self, name: str) -> list[OpenAlert]: ...

    async def ack(self, fingerprint: str, who: str) -> OpenAlert | None: ...

    async def unack(self, fingerprint: str) -> bool: ...


class ActionStore(Protocol):
    async def propose(self, user: str, fingerprint: str, description: str, duration_s: int, text: str) -> Proposal: ...

    async def accept(self, user: str, code: str) -> Proposal | None:
        """The proposal `code` answers, taken (a code works once); None if it does not match or expired."""
        ...

    async def withdraw(self, user: str) -> Proposal | None:
        """Drop the pending proposal ("no", or another command); the proposal if a fresh one was pending."""
        ...

    async def pending_code(self, user: str) -> str | None: ...

    async def done(
        self, user: str, kind: Literal["silence", "ack"], fingerprint: str, description: str,
        silence_id: str | None = None,
    ) -> Done: ...  # fmt: skip

    async def keep(self, user: str, done: Done) -> None: ...

    async def undoable(self, user: str) -> Done | None: ...


class EscalationStore(Protocol):
    """Escalation timelines by alert fingerprint (`bot.oncall.escalation`), with each step's run a claim:
    of several runners (instances, the ticker and a command) one runs a step; a claim not completed within
    its time lapses, and the next claim runs the rest of that step."""

    async def start(self, timeline: Timeline) -> bool:
        """Keep a new escalation; False when the alert has one that has not ended (a repeat)."""
        ...

    async def get(self, fingerprint: str) -> Timeline | None: ...

    async def recent(self) -> list[Timeline]:
        """Open escalations and those ended in the last day, oldest first."""
        ...

    async def due(self, now: float, limit: int) -> list[str]:
        """Fingerprints of open escalations whose next step is due at `now`, earliest first."""
        ...

    async def claim(
        self, fingerprint: str, step: int | None, now: float, owner: str, until: float, hurry: bool = False
    ) -> Timeline | None:
        """The run of `step` (None: whichever is next) for `owner` until `until`, if the escalation is open, has a
        step left, it is due (or `hurry`), and nobody else's claim is live; the timeline as claimed, else None."""
        ...

    async def record(self, fingerprint: str, event: Event) -> None: ...

    async def complete(self, fingerprint: str, step: int, owner: str, due: float | None) -> bool:
        """Step `step` has run: the next is due at `due` (None: nothing left). False if `owner` lost the claim."""
        ...

    async def ack(self, fingerprint: str, who: str, now: float) -> Timeline | None:
        """Stop an open escalation; the stopped timeline, or None when there was nothing open to stop."""
        ...

    async def unack(self, fingerprint: str, now: float) -> bool:
        """Reopen an acked escalation where it stood (an ack undone)."""
        ...

    async def resolve(self, fingerprint: str, now: float) -> Timeline | None:
        """End an escalation (open or acked); the ended timeline, or None when it had ended already."""
        ...

    async def remember(self, key: str, value: str, ttl_s: float) -> None:
        """A short note for later callbacks: which alerts a message or a call was about."""
        ...

    async def recall(self, key: str) -> str | None: ...


class OverrideStore(Protocol):
    """Who took a schedule's pager, from when to when (`take`)."""

    async def add(self, override: Override) -> None: ...

    async def current(self, schedule: str, now: float) -> list[Override]:
        """The schedule's overrides that have not ended by `now`."""
        ...


class Lease(Protocol):
    """Held by at most one process at a time; taken over when the holder stops renewing it."""

    async def hold(self) -> bool:
        """True while this process holds the lease (taking or renewing it as needed)."""
        ...

    async def release(self) -> None: ...


CONTEXT_UNAVAILABLE = "(Conversation memory is unavailable right now: follow-ups won't work, full commands do.)"
"""Added to a reply that needed the user's context while the shared store is down."""
STATE_UNAVAILABLE = "Sorry, alert state is unavailable right now, so that can't be done. Try again in a minute."


class ContextStore(Protocol):
    """Per-user conversation context. Missing or expired context reads as an empty `Context()`."""

    async def get(self, user: str) -> Context: ...

    async def put(self, user: str, context: Context) -> None: ...

    async def clear(self, user: str) -> None: ...


class PageStore(Protocol):
    async def keep(self, user: str, pages: Sequence[str]) -> None:
        """Replace the user's pending pages (an empty sequence clears them)."""
        ...

    async def next(self, user: str) -> tuple[str, int] | None:
        """The next page and how many remain after it, or None."""
        ...


class Verdict(StrEnum):
    ALLOW = "allow"
    WARN = "warn"
    """Over the limit for the first time since the bucket emptied: say "slow down" once."""
    DROP = "drop"
    """Still over the limit: answer nothing until the bucket refills."""


class RateLimiter(Protocol):
    async def check(self, number: str) -> Verdict: ...


@dataclass(frozen=True)
class Admitted:
    """What the gate in front of the bot decided about one text (`Admission.admit`)."""

    verdict: Verdict = Verdict.ALLOW
    """ALLOW, or the rate limit's WARN (say "slow down" once) or DROP (say nothing)."""
    earlier: str | None = None
    """The first reply to a MessageSid already answered: send it again, run nothing."""
    claimed: bool = False
    """This process owns the MessageSid now: `Idempotency.finish` it with the reply, or `abandon` it."""
    context: Context | None = None
    """The number's conversation context as the gate read it, for an admitted text (saves a read)."""


class Admission(Protocol):
    """What the store does around each text, in one round trip each with Redis: before it, the
    MessageSid check, the rate limits and the claim (`admit`); after it, the pages kept for "more" and
    the reply kept for repeats (`settle`)."""

    async def admit(self, sid: str, number: str) -> Admitted:
        """Raises ReplyPending when another instance is answering this very message, and StoreUnavailable
        when the store cannot be reached (nothing was counted or claimed then)."""
        ...

    async def settle(self, user: str, pages: Sequence[str] | None, sid: str | None, reply: str) -> None:
        """Keep `pages` for "more" (None: leave the kept ones) and, for a claimed `sid`, `reply` for its
        repeats. On StoreUnavailable: "more" finds nothing and a repeat runs again."""
        ...


class Idempotency(Protocol):
    """The first reply to each MessageSid, so a webhook Twilio repeats is answered, not re-run."""

    async def claim_if_done(self, sid: str) -> str | None:
        """The first reply if `sid` was already answered (claims nothing)."""
        ...

    async def claim(self, sid: str) -> str | None:
        """None if this call owns `sid` now (run it, then `finish`); else the first reply (waiting for it)."""
        ...

    async def finish(self, sid: str, reply: str) -> None: ...

    async def abandon(self, sid: str) -> None:
        """The owner failed before replying: let a repeat run it again."""
        ...


class MediaStore(Protocol):
    async def put(self, data: bytes, content_type: str = "image/png") -> str:
        """Keep `data` for the store's TTL; returns the new token that fetches it."""
        ...

    async def get(self, token: str) -> tuple[bytes, str] | None:
        """The data and its content type, or None when the token is unknown or expired."""
        ...


class SubscriptionsUnavailable(Exception):
    """The store could not be read or written; the message is short and safe."""


class Subscriptions(Protocol):
    async def is_subscribed(self, number: str, default: bool) -> bool: ...

    async def set(self, number: str, subscribed: bool) -> None: ...


@dataclass
class Stores:
    """Everything a process shares with its siblings, built once in the app's lifespan."""

    contexts: ContextStore
    pages: PageStore
    limiter: RateLimiter
    idempotency: Idempotency
    admission: Admission
    dedup: DedupStore
    budget: BudgetStore
    alerts: AlertStore
    actions: ActionStore
    rules_lease: Lease
    media: MediaStore
    escalations: EscalationStore
    overrides: OverrideStore
    shared: bool = False
    """True for Redis: several instances act as one."""

    async def close(self) -> None:
        """Release what must not outlive the process (the rules lease)."""
        await self.rules_lease.release()

    async def ping(self) -> None:
        """For /readyz: raises StoreUnavailable when the shared store cannot be reached (never, in memory)."""
