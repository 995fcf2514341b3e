"""The values the intent pipeline hands back: plain, immutable, JSON-ready.

Nothing here does I/O. A miss is a `Parse` whose intent is `Intent.UNKNOWN`, never an exception, so
callers (the SMS webhook, the batch tool, the REPL) handle every text the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

SlotValue = str | int | tuple[str, ...]
"""A slot holds text (service, metric, alert …), seconds (`range_s`, `duration_s`) or words (`terms`)."""


def terms_of(slots: Mapping[str, SlotValue]) -> tuple[str, ...]:
    """The `terms` slot as words (empty when absent)."""
    terms = slots.get("terms", ())
    return terms if isinstance(terms, tuple) else ()


def seconds_of(slots: Mapping[str, SlotValue], name: str) -> int | None:
    """A duration slot (`range_s`, `duration_s`) as an int, or None when absent."""
    value = slots.get(name)
    return value if isinstance(value, int) else None


class Intent(StrEnum):
    """The canonical commands of the contract (`docs/commands.md`)."""

    HELP = "help"
    STATUS = "status"
    HEALTH = "health"
    METRICS = "metrics"
    LOGS = "logs"
    DB = "db"
    GATEWAY = "gateway"
    ALERTS = "alerts"
    SILENCE = "silence"
    ACK = "ack"
    GRAPH = "graph"
    MORE = "more"
    SUBSCRIBE = "subscribe"
    UNSUBSCRIBE = "unsubscribe"
    RESET = "reset"
    CONFIRM = "confirm"
    UNDO = "undo"
    UNSILENCE = "unsilence"
    """An addition to the contract: `unsilence <silence id>` ends a silence by the id the bot gave."""
    ONCALL = "oncall"
    """Who is on call now, in one schedule or every one."""
    TAKE = "take"
    """The texting operator takes a schedule's pager now (an override), for a while or to the shift's end."""
    ESCALATE = "escalate"
    """Move an alert to the next step of its escalation policy now."""
    UNKNOWN = "unknown"


class Source(StrEnum):
    """Where a parse came from: the user's strict syntax, the language rules, or their context."""

    STRICT = "strict"
    NL = "nl"
    CONTEXT = "context"


@dataclass(frozen=True)
class Parse:
    """One text turned into one canonical command."""

    intent: Intent
    slots: Mapping[str, SlotValue] = field(default_factory=dict)
    command: str = ""
    """The strict form that, texted as is, gives the same result ("" for `unknown`)."""
    confidence: float = 1.0
    source: Source = Source.NL

    @property
    def suggestion(self) -> str | None:
        value = self.slots.get("suggestion")
        return value if isinstance(value, str) else None

    def to_json(self) -> dict[str, Any]:
        """The contract's parser output object; absent slots are left out, never null."""
        slots: dict[str, Any] = {
            name: list(value) if isinstance(value, tuple) else value for name, value in self.slots.items()
        }
        return {
            "intent": self.intent.value,
            "slots": slots,
            "command": self.command,
            "confidence": round(self.confidence, 2),
            "source": self.source.value,
        }


@dataclass(frozen=True, slots=True)
class Context:
    """What the parser may remember of one user's conversation.

    The bot keeps one per phone number (and lets it expire); the parser only reads it, and
    `intents.followup.remember` computes the next one, so the core stays pure.
    """

    intent: Intent | None = None
    """The user's last query command (`metrics`, `logs`, `graph`, `health`, `db`, `gateway`, `alerts`) …"""
    slots: Mapping[str, SlotValue] = field(default_factory=dict)
    """… and its slots, which follow-ups complete themselves from; plus `alert`, the alert of the user's
    last alert command (silence, ack, escalate), which "ack it" takes. Kept among the slots so that every
    context store already persists it; a query command never takes `alert` from here."""
    suggestion: str | None = None
    """The strict command offered by the last "Did you mean …?"; a bare "Y" runs it."""
    pending_code: str | None = None
    """The code of a write (silence, ack) awaiting "Y <code>"; set by the bot."""
    alerts: tuple[str, ...] = ()
    """Alerts as numbered in the last list or push the user received (1-based); set by the bot."""

    @property
    def empty(self) -> bool:
        return (
            self.intent is None
            and not self.slots
            and self.suggestion is None
            and self.pending_code is None
            and not self.alerts
        )


@dataclass(frozen=True)
class Entity:
    """A span the entity rules recognised, with its canonical value."""

    label: str
    text: str
    value: str | int
    start: int
    """Token index of the first token."""
    end: int
    """Token index one past the last token."""


@dataclass(frozen=True)
class Correction:
    """A word the typo corrector replaced, kept so the REPL can show it."""

    original: str
    corrected: str
    distance: int


@dataclass(frozen=True)
class Trace:
    """Everything the pipeline saw on the way to a parse; the REPL prints it for tuning."""

    text: str
    normalized: str
    tokens: tuple[str, ...]
    corrections: tuple[Correction, ...]
    entities: tuple[Entity, ...]
    scores: Mapping[str, float]
    """Every intent's score (pseudo-intents included); empty when strict syntax or a reply decided."""
    reasons: Mapping[str, tuple[tuple[str, float], ...]]
    """What made up each score: words, phrases and features with their weights."""
    context_used: tuple[str, ...]
    """Slot names (or "intent") taken from the user's context."""
    parse: Parse
    unsure: str = ""
    """Why a write command was asked about instead of run ("two alerts named (2, HighCPU)"); "" if it was not."""
    follow_up: bool = False
    """Phrased as a continuation ("what about memory?", "ack it"), context or not: without the context,
    the bot says it could not remember rather than answer as if the text stood alone."""
