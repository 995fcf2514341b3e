"""The words of alert texts: one SMS per notification, its alerts numbered for replies, cut to fit.

    FIRING 2 critical: DiskFull
    1) db1:9100 - Disk /var is 97% full on db1 (3m)
    2) db2:9100 - Disk /var is 96% full on db2 (3m)
    Reply ack N, silence N 1h

The numbers are what "ack 2" and "silence 2 1h" refer to, so they come from one stable order
(`numbered`), not from the order a source happened to list the alerts in. A resolution is shorter and
has nothing to act on ("RESOLVED: DiskFull db1:9100, db2:9100"); a storm gets one summary instead of
hundreds of texts (`format_summary`).

Every value from an alert (names, labels, summaries) is hostile until cleaned: links are dropped (an
SMS must not carry internal URLs, nor invite a tap), line breaks cannot forge lines of their own, and
the text is folded to GSM-7 so one emoji in a label cannot triple what a text costs. Replies about an
alert (ack, silence, "which one?") show names and labels through the same `alert_name` and
`label_value`. Each text fits in
`max_segments` segments: when a group is too big, the first alerts are listed and the rest counted,
including the alerts the source left out of the payload (Alertmanager's `truncatedAlerts`, or past the
1,000 we parse): a 10,000-alert group reads "FIRING 10000 ... +9993 more".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from bot.alerting.model import AlertEvent, Notification
from bot.sms.encoding import fit, fold, segment_count
from monitors.formatting import clip, duration

ACTIONS = "Reply ack N, silence N 1h"
"""The footer of a firing text for people who may act on it (operators)."""
ALERTS_HINT = "text 'alerts' for all"
WHERE_LABELS = ("instance", "host", "service", "pod", "job", "scope")
"""Labels that say where an alert is, in the order one is picked to show (Datadog's scope comes last)."""

SUMMARY_LIMIT = 60
LABEL_LIMIT = 30
NAMES_LIMIT = 40

# How a firing text gives way when not even one alert fits: shorter summaries, then none, then short labels.
# Each step is (summary limit, name/label limit, header names limit).
_SHRINK_STEPS = (
    (SUMMARY_LIMIT, LABEL_LIMIT, NAMES_LIMIT),
    (30, LABEL_LIMIT, NAMES_LIMIT),
    (0, LABEL_LIMIT, 24),
    (0, 12, 16),
)
_READ_LIMIT = 2000
"""Characters of a value looked at: more cannot show in a text, and cleaning costs time per character."""

_MARKDOWN_LINK = re.compile(r"\[([^\]\n]*)\]\([^)\s]*\)")
_URL = re.compile(
    r"<?(?<![\w+.-])[a-z][a-z0-9+.-]*+://\S*"  # anything with a scheme
    r"|(?<![\w.-])www\.\S+"
    r"|(?<![\w.-])(?>[\w-]+(?:\.[\w-]+)+)(?:(?<!\d)(?::\d+)?|:\d+)/\S*",  # host/path: phones link it
    re.IGNORECASE,
)
"""Links. Each part starts only where a word does and never backtracks into it, so a long hostile value
costs linear time. A dotted number with a path ("10.0.0.0/16") is a network, not a link, and stays."""
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


def numbered(alerts: Iterable[AlertEvent]) -> tuple[AlertEvent, ...]:
    """The order replies number alerts in: firing first, grouped by name, oldest first within a name
    (an unknown start last), the fingerprint breaking ties. The same alerts give the same order whatever
    order they came in, so "ack 2" means the same alert to the bot as on the phone."""
    return tuple(sorted(alerts, key=_order))


def _order(alert: AlertEvent) -> tuple[bool, str, str, bool, float, str]:
    start = alert.starts_at
    return (
        alert.status != "firing",
        alert.name.casefold(),
        alert.name,
        start is None,
        start.timestamp() if start is not None else 0.0,
        alert.fingerprint,
    )


def format_notification(
    notification: Notification,
    numbered_alerts: Sequence[AlertEvent],
    now: datetime,
    *,
    max_segments: int = 3,
    actions: bool = True,
) -> str:
    """The firing text while anything in the notification fires, else the resolution (in one segment:
    `max_segments` is room for alerts to act on, and a resolution has none)."""
    if notification.firing:
        return format_firing(notification, numbered_alerts, now, max_segments=max_segments, actions=actions)
    return format_resolved(notification)


def format_firing(
    notification: Notification,
    numbered_alerts: Sequence[AlertEvent],
    now: datetime,
    *,
    max_segments: int = 3,
    actions: bool = True,
) -> str:
    """The text for a notification with firing alerts, at most `max_segments` segments, GSM-7 only.

    `numbered_alerts` is the order the recipient's replies number alerts in: usually
    `numbered(notification.alerts)`, or a longer list (every open alert) the caller keeps per recipient.
    Each firing alert of the notification is shown under its 1-based position there. Alerts that resolved
    in the same notification get one "Resolved:" line when everything fits. `actions` adds the reply hint
    (leave it out for people who may not ack or silence). `now` must be timezone-aware.

    Raises ValueError when nothing fires (use `format_resolved`), when a firing alert is missing from
    `numbered_alerts`, when `now` is naive, or when `max_segments` is below 1.
    """
    _check(max_segments)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if not notification.firing:
        raise ValueError("nothing fires in this notification; use format_resolved")
    position: dict[str, int] = {}
    for number, alert in enumerate(numbered_alerts, 1):
        position.setdefault(alert.fingerprint, number)
    missing = sum(1 for a in notification.firing if a.fingerprint not in position)
    if missing:
        raise ValueError(f"{missing} firing alert(s) missing from numbered_alerts")
    firing = sorted(notification.firing, key=lambda a: position[a.fingerprint])
    severity = max(a.severity for a in firing).name.lower()

    layout = _FiringLayout(
        header="",
        lines=[],
        hidden=_truncated(notification),
        resolved=_resolved_items(notification.resolved, LABEL_LIMIT),
        footer=ACTIONS if actions else "",
    )
    total = len(firing) + layout.hidden  # the group's real size, also what Alertmanager did not send
    for summary_limit, label_limit, names_limit in _SHRINK_STEPS:
        names = _distinct(_name(a.name, label_limit) for a in firing)
        layout.header = f"FIRING {total} {severity}: {_names(names, names_limit)}"
        layout.lines = [
            _line(position[a.fingerprint], a, now, len(names) > 1, summary_limit, label_limit) for a in firing
        ]
        if layout.resolved and _fits(text := layout.compose(len(firing), with_resolved=True), max_segments):
            return text
        shown = _most(len(firing), lambda n: _fits(layout.compose(n), max_segments))
        if shown:
            return layout.compose(shown)
    return fit(layout.compose(1), max_segments)  # not even one short alert fits: cut rather than send more


@dataclass
class _FiringLayout:
    """The parts of a firing text, so it can be put together with more or fewer alert lines."""

    header: str
    lines: list[str]
    hidden: int
    """Alerts not in the notification at all (the source truncated the group); always counted in "+N more"."""
    resolved: str
    footer: str

    def compose(self, shown: int, with_resolved: bool = False) -> str:
        more = len(self.lines) - shown + self.hidden
        parts = [self.header, *self.lines[:shown]]
        if more:
            parts.append(f"+{more} more; {ALERTS_HINT}")
        if with_resolved and self.resolved:
            parts.append(f"Resolved: {self.resolved}")
        if self.footer:
            parts.append(self.footer)
        return "\n".join(parts)


def format_resolved(notification: Notification, *, max_segments: int = 1) -> str:
    """ "RESOLVED: DiskFull db1:9100, db2:9100": the names and places of what resolved, nothing to act on.
    Too many for `max_segments` (one by default: a resolution should be cheap) ends "+N more".

    Raises ValueError when nothing in the notification resolved, or when `max_segments` is below 1.
    """
    _check(max_segments)
    alerts = numbered(notification.resolved)
    if not alerts:
        raise ValueError("nothing resolved in this notification")
    hidden = 0 if notification.firing else _truncated(notification)

    def text(shown: int, label_limit: int = LABEL_LIMIT) -> str:
        more = len(alerts) - shown + hidden
        return f"RESOLVED: {_resolved_items(alerts[:shown], label_limit)}" + (f" +{more} more" if more else "")

    shown = _most(len(alerts), lambda n: _fits(text(n), max_segments))
    return text(shown) if shown else fit(text(1, 12), max_segments)


def format_summary(
    count_by_name: Mapping[str, int],
    suppressed: int,
    *,
    paused_for_s: float | None = None,
    max_segments: int = 1,
) -> str:
    """The one text a number gets once its send budget runs out:
    "Alert storm: 487 more alerts (HighCPU 300, DiskFull 187) not texted. Text 'alerts' for the list."

    `suppressed` is how many alerts were not texted; `count_by_name` breaks it down, most first (names
    that do not fit are counted as "N other names"). `paused_for_s`, when given, tells the person how
    long nothing more will come ("Texts paused 1h."), so silence afterwards is not mistaken for calm.
    Raises ValueError for a count below 1.
    """
    _check(max_segments)
    if suppressed < 1:
        raise ValueError("suppressed must be at least 1")
    counts: dict[str, int] = {}
    for name, count in count_by_name.items():
        if count > 0:
            key = _name(name, LABEL_LIMIT)
            counts[key] = counts.get(key, 0) + count
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    noun = "alert" if suppressed == 1 else "alerts"
    paused = f" Texts paused {duration(paused_for_s)}." if paused_for_s else ""

    def text(shown: int) -> str:
        parts = [f"{name} {count}" for name, count in ranked[:shown]]
        others = len(ranked) - shown
        if parts and others:
            parts.append(f"{others} other name" + ("s" if others > 1 else ""))
        breakdown = f" ({', '.join(parts)})" if parts else ""
        return f"Alert storm: {suppressed} more {noun}{breakdown} not texted.{paused} Text 'alerts' for the list."

    return fit(text(_most(len(ranked), lambda n: _fits(text(n), max_segments))), max_segments)


def _most(total: int, fits: Callable[[int], bool]) -> int:
    """The largest n in 0..total with fits(n), 0 when none does. Texts grow with n except at n = total,
    where a "+N more" part also goes, so that one is tried first and the rest binary-searched."""
    if total and fits(total):
        return total
    low, high = 0, max(0, total - 1)
    while low < high:
        middle = (low + high + 1) // 2
        if fits(middle):
            low = middle
        else:
            high = middle - 1
    return low


# --- pieces -----------------------------------------------------------------------------------------------------


def _line(number: int, alert: AlertEvent, now: datetime, with_name: bool, summary_limit: int, label_limit: int) -> str:
    """ "1) db1:9100 - Disk /var is 97% full on db1 (3m)"; the name too when the group mixes names."""
    head = [f"{number})"]
    where = _where(alert.labels, label_limit)
    if with_name or not where:
        head.append(_name(alert.name, label_limit))
    if where:
        head.append(where)
    text = " ".join(head)
    summary = clean(alert.summary, summary_limit) if summary_limit else ""
    if summary:
        text += f" - {summary}"
    if alert.starts_at is not None:
        text += f" ({duration((now - alert.starts_at).total_seconds())})"
    return text


def _resolved_items(alerts: Sequence[AlertEvent], label_limit: int) -> str:
    """ "DiskFull db1:9100, db2:9100; HighCPU web1": places grouped under their alert's name."""
    places: dict[str, list[str]] = {}
    for alert in numbered(alerts):
        where = places.setdefault(_name(alert.name, label_limit), [])
        place = _where(alert.labels, label_limit)
        if place and place not in where:
            where.append(place)
    return "; ".join(f"{name} {', '.join(where)}" if where else name for name, where in places.items())


def _where(labels: Mapping[str, str], limit: int) -> str:
    """The first telling label's value (see `label_value`)."""
    for key in WHERE_LABELS:
        value = label_value(labels.get(key, ""), limit)
        if value:
            return value
    return ""


def label_value(value: str, limit: int = LABEL_LIMIT) -> str:
    """A label's value as any reply shows it: a URL shrinks to its host and port (no link in a text),
    anything else is `clean`ed. Empty when nothing is left to show."""
    value = value[:_READ_LIMIT].strip()
    if _SCHEME.match(value):
        value = re.split(r"[/?#]", _SCHEME.sub("", value), maxsplit=1)[0].rpartition("@")[2]
    return clean(value, limit)


def alert_name(name: str, limit: int = LABEL_LIMIT) -> str:
    """An alert's name as any reply shows it (ack, silence, lists, alert texts): `clean`ed, never empty."""
    return _name(name, limit)


def _names(names: Sequence[str], limit: int) -> str:
    """ "DiskFull, HighCPU +2": as many whole names as fit in `limit`, the rest counted (the first always shown)."""
    shown = [clip(names[0], limit)]
    for name in names[1:]:
        if len(", ".join([*shown, name])) + len(f" +{len(names)}") > limit:
            break
        shown.append(name)
    rest = len(names) - len(shown)
    return ", ".join(shown) + (f" +{rest}" if rest else "")


def _name(name: str, limit: int) -> str:
    return clean(name, limit) or "(unnamed)"


def clean(text: str, limit: int) -> str:
    """A value from an alert made fit for one line of an SMS: links removed (a Markdown link keeps its
    words), folded to GSM-7, line breaks and runs of spaces made single spaces, at most `limit` long."""
    text = _MARKDOWN_LINK.sub(r"\1", text[:_READ_LIMIT])
    text = _URL.sub(" ", text)
    return clip(fold(text), limit)


def _distinct(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _truncated(notification: Notification) -> int:
    """Alerts the source left out of the notification (too many to send), which the text still counts."""
    return notification.truncated


def _fits(text: str, max_segments: int) -> bool:
    return segment_count(text) <= max_segments


def _check(max_segments: int) -> None:
    if max_segments < 1:
        raise ValueError("max_segments must be at least 1")
