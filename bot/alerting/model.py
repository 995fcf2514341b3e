"""What every alert source is turned into before anyone is texted.

Alertmanager's webhook, Datadog's webhook and the bot's own threshold rules all produce
`Notification`s of `AlertEvent`s; grouping, deduplication, recipients and the SMS wording only
ever see these.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum
from typing import Literal

Status = Literal["firing", "resolved"]


class Severity(IntEnum):
    """Ordered, so a recipient's minimum can be compared: info < warning < critical."""

    INFO = 1
    WARNING = 2
    CRITICAL = 3

    @classmethod
    def parse(cls, value: str | None) -> Severity:
        """A source's severity word as ours (unknown words count as warning, the usual default)."""
        word = (value or "").strip().lower()
        if word in {"critical", "crit", "page", "p1", "p2", "error", "high", "emergency", "alert", "fatal"}:
            return cls.CRITICAL
        if word in {"info", "informational", "low", "p4", "p5", "none", "notice", "success"}:
            return cls.INFO
        return cls.WARNING


@dataclass(frozen=True)
class AlertEvent:
    """One alert as a notification reports it."""

    fingerprint: str
    """Stable identity of the alert (Alertmanager's fingerprint, Datadog's monitor/scope, rule+labels)."""
    name: str
    labels: Mapping[str, str]
    status: Status
    severity: Severity = Severity.WARNING
    summary: str = ""
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    source: str = "alertmanager"


@dataclass(frozen=True)
class Notification:
    """One delivery from a source: a group of alerts that belong together (one SMS per recipient)."""

    source: str
    group_key: str
    status: Status
    alerts: tuple[AlertEvent, ...]
    delivery_key: str = ""
    """Identifies this exact delivery, so a repeat of it (a retry, a duplicate POST) can be dropped."""
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def firing(self) -> tuple[AlertEvent, ...]:
        return tuple(a for a in self.alerts if a.status == "firing")

    @property
    def resolved(self) -> tuple[AlertEvent, ...]:
        return tuple(a for a in self.alerts if a.status == "resolved")

    @property
    def severity(self) -> Severity:
        return max((a.severity for a in self.alerts), default=Severity.WARNING)

    @property
    def truncated(self) -> int:
        """Alerts of the group the source left out (Alertmanager's `truncatedAlerts`, and what we did not
        parse past `MAX_ALERTS`): not in `alerts`, yet part of the group, so every count includes them."""
        value = self.extra.get("truncated_alerts", "0")
        return int(value) if value.isdigit() else 0


@dataclass(frozen=True)
class OpenAlert:
    event: AlertEvent
    first_seen: float
    acked_by: str | None = None
    acked_at: float | None = None


@dataclass(frozen=True)
class Changes:
    """What a notification changed, i.e. what is worth a text."""

    firing: tuple[AlertEvent, ...] = ()
    """New alerts, and repeats of ones nobody acknowledged yet."""
    resolved: tuple[AlertEvent, ...] = ()
    """Alerts that were open and are now resolved (each reported once)."""
    quiet: tuple[AlertEvent, ...] = field(default_factory=tuple)
    """Repeats of acknowledged alerts and stale deliveries: recorded, not texted."""

    @property
    def worth_texting(self) -> bool:
        return bool(self.firing or self.resolved)


@dataclass(frozen=True)
class Proposal:
    """A silence waiting for its code."""

    code: str
    fingerprint: str
    description: str
    """What the echo said it would silence ("HighCPU{service=checkout}")."""
    duration_s: int
    text: str
    """The user's own words, kept as the silence's comment."""
    at: float


@dataclass(frozen=True)
class Done:
    kind: Literal["silence", "ack"]
    fingerprint: str
    description: str
    at: float
    silence_id: str | None = None
