"""Alert webhooks in, `Notification`s out: Alertmanager's webhook (payload version "4") and Datadog's.

Both parsers take the raw request body and either return a `Notification` or raise `BadPayload`, whose
text is short and safe to log or answer with (it never echoes the payload). They do no I/O and keep no
state; what the caller needs to keep state with is on the result:

- `Notification.delivery_key` is the same for a repeat of the same delivery (Alertmanager retrying after a
  timeout, Datadog retrying after a 5xx, a proxy posting twice) and different as soon as any alert in it
  changes, so a `Deduplicator` keyed on it drops exactly the repeats.
- `is_stale(incoming, latest)` tells, per alert fingerprint, whether a delivery arrived out of order: a
  firing alert delivered after the resolution of the same episode (same `starts_at`, or a start before the
  recorded end) says nothing new and must not page anyone. A resolution that arrives before its firing is
  not stale: it is recorded, and the late firing is then recognised as stale. `drop_stale` applies this to
  a whole notification. Stale alerts belong in the history all the same; they are just not texted.

Datadog has no fixed webhook body: the user writes a template of `$VARIABLES`. The default template (what
Datadog fills in when none is given; tests/fixtures/datadog/webhook_default_payload_template.json) is
understood, but carries no monitor id, scope or alert type, so identity and severity are read from the
event title. The template we recommend configuring (`DATADOG_PAYLOAD_TEMPLATE`) adds them:

    {
      "id": "$ID",
      "date": "$DATE",
      "last_updated": "$LAST_UPDATED",
      "event_type": "$EVENT_TYPE",
      "title": "$EVENT_TITLE",
      "body": "$TEXT_ONLY_MSG",
      "alert_id": "$ALERT_ID",
      "alert_title": "$ALERT_TITLE",
      "alert_transition": "$ALERT_TRANSITION",
      "alert_type": "$ALERT_TYPE",
      "alert_priority": "$ALERT_PRIORITY",
      "alert_scope": "$ALERT_SCOPE",
      "aggreg_key": "$AGGREG_KEY",
      "tags": "$TAGS"
    }

With it, the fingerprint is the monitor id plus the scope (one alert per monitor group, as Datadog
counts them), "Recovered" is a resolution, the priority (P1-P5) or else the alert type gives the severity,
and `$AGGREG_KEY` groups a monitor's events.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from bot.alerting.model import AlertEvent, Notification, Severity, Status
from monitors.formatting import safe

MAX_BODY_BYTES = 4 * 1024 * 1024
"""Largest webhook body parsed. Alertmanager's 1,000 alerts with long annotations stay well under it; the
route should stop reading at this size rather than buffer more and hand it here."""
MAX_ALERTS = 1000
"""Alerts kept from one payload; the rest are counted in `extra["truncated_alerts"]`, not parsed. Setting
`max_alerts` on Alertmanager's webhook receiver makes it trim (and count) them before sending."""

ZERO_TIME_YEAR = 1
"""Go's zero time ("0001-01-01T00:00:00Z") is how Alertmanager writes "no end yet"."""

DATADOG_PAYLOAD_TEMPLATE = """\
{
  "id": "$ID",
  "date": "$DATE",
  "last_updated": "$LAST_UPDATED",
  "event_type": "$EVENT_TYPE",
  "title": "$EVENT_TITLE",
  "body": "$TEXT_ONLY_MSG",
  "alert_id": "$ALERT_ID",
  "alert_title": "$ALERT_TITLE",
  "alert_transition": "$ALERT_TRANSITION",
  "alert_type": "$ALERT_TYPE",
  "alert_priority": "$ALERT_PRIORITY",
  "alert_scope": "$ALERT_SCOPE",
  "aggreg_key": "$AGGREG_KEY",
  "tags": "$TAGS"
}
"""
"""The Datadog webhook payload to configure (Integrations > Webhooks > Payload); see the module docstring."""

_STATUSES: frozenset[str] = frozenset({"firing", "resolved"})
_UNFILLED = re.compile(r"\$[A-Z][A-Z0-9_]*(\[[^\]]*\])?")
"""A template variable Datadog left as it was (it does not apply to this event)."""
_DATADOG_TITLE = re.compile(
    r"""^\s*(?:\[(?P<priority>P[1-5])\]\s*)?
        \[(?P<transition>Re-Triggered|Triggered|Recovered|Re-Warn|Warn|Re-No\ Data|No\ Data|Renotify)
        (?:\ on\ \{(?P<scope>[^}]*)\})?\]\s*(?P<name>.*)$""",
    re.IGNORECASE | re.VERBOSE | re.DOTALL,
)
_DATADOG_TRANSITION_SEVERITY = {"triggered": "error", "re-triggered": "error", "renotify": "error"}
"""The default template has no alert type; a triggered monitor is in its alert (error) state."""
_DATADOG_TYPE_SEVERITY = {"error": Severity.CRITICAL, "warning": Severity.WARNING, "info": Severity.INFO}
_MAX_TAGS = 50
_LAST_EPOCH_S = datetime(9999, 12, 31, tzinfo=UTC).timestamp()


class BadPayload(ValueError):
    """A webhook body that is not a notification we understand. The message is short, fixed-form text
    (no payload content beyond a clipped, sanitised value), fit for a 400 answer and a log line."""


# --- Alertmanager ---------------------------------------------------------------------------------------------


def parse_alertmanager(body: bytes) -> Notification:
    """Alertmanager's webhook body (payload version "4") as a `Notification`.

    Raises BadPayload for another version, a body that is not JSON or too big, and any field of the wrong
    type. Alerts past `MAX_ALERTS` are counted, not parsed; so is Alertmanager's own `truncatedAlerts`.
    """
    payload = _load(body)
    version = payload.get("version")
    if version != "4":
        raise BadPayload(f"unsupported Alertmanager payload version {_shown(version)}")
    status = _status(payload.get("status"), "status")
    group_key = payload.get("groupKey")
    if not isinstance(group_key, str) or not group_key:
        raise BadPayload("groupKey is missing or not text")
    raw_alerts = payload.get("alerts")
    if not isinstance(raw_alerts, list) or not raw_alerts:
        raise BadPayload("alerts is missing, empty or not a list")
    truncated = payload.get("truncatedAlerts", 0)
    if not isinstance(truncated, int) or isinstance(truncated, bool) or truncated < 0:
        raise BadPayload("truncatedAlerts is not a count")
    truncated += max(0, len(raw_alerts) - MAX_ALERTS)

    alerts: list[AlertEvent] = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_alerts[:MAX_ALERTS]):
        alert = _alertmanager_alert(raw, index)
        if alert.fingerprint not in seen:  # the same alert twice in one group says nothing more
            seen.add(alert.fingerprint)
            alerts.append(alert)
    extra = {"receiver": payload["receiver"]} if isinstance(payload.get("receiver"), str) else {}
    if truncated:
        extra["truncated_alerts"] = str(truncated)
    return Notification(
        source="alertmanager",
        group_key=group_key,
        status=status,
        alerts=tuple(alerts),
        delivery_key=_delivery_key("alertmanager", group_key, alerts),
        extra=extra,
    )


def _alertmanager_alert(raw: Any, index: int) -> AlertEvent:
    where = f"alerts[{index}]"
    if not isinstance(raw, dict):
        raise BadPayload(f"{where} is not an object")
    labels = _string_map(raw.get("labels"), f"{where}.labels", required=True)
    annotations = _string_map(raw.get("annotations"), f"{where}.annotations", required=False)
    fingerprint = raw.get("fingerprint")
    if fingerprint is None or fingerprint == "":
        fingerprint = _labels_fingerprint(labels)
    elif not isinstance(fingerprint, str):
        raise BadPayload(f"{where}.fingerprint is not text")
    return AlertEvent(
        fingerprint=fingerprint,
        name=labels.get("alertname", ""),
        labels=labels,
        status=_status(raw.get("status"), f"{where}.status"),
        severity=Severity.parse(labels.get("severity")),
        summary=annotations.get("summary") or annotations.get("description") or "",
        starts_at=_rfc3339(raw.get("startsAt"), f"{where}.startsAt"),
        ends_at=_rfc3339(raw.get("endsAt"), f"{where}.endsAt"),
        source="alertmanager",
    )


def _labels_fingerprint(labels: Mapping[str, str]) -> str:
    """Alertmanager-like identity when a sender left the fingerprint out: a hash of the sorted label set."""
    return _digest(json.dumps(sorted(labels.items()), separators=(",", ":")))[:16]


# --- Datadog --------------------------------------------------------------------------------------------------


def parse_datadog(body: bytes) -> Notification:
    """A Datadog webhook body, from the default payload template or `DATADOG_PAYLOAD_TEMPLATE`, as a
    `Notification` of one alert (Datadog sends one webhook per monitor group and transition).

    Raises BadPayload for a body that is not a JSON object, holds a field of the wrong type, or has no title.
    """
    payload = _load(body)
    title = _dd_text(payload, "alert_title") or _dd_text(payload, "title")
    if not title:
        raise BadPayload("Datadog payload has no title")
    parsed = _DATADOG_TITLE.match(title)
    name = (parsed["name"] if parsed else title).strip()
    if name.startswith("[") and name.endswith("]"):  # "[Triggered] [Memory Alert]"
        name = name[1:-1].strip()
    name = name or title  # "[Triggered]" alone: the title is all there is
    transition = _dd_text(payload, "alert_transition") or (parsed["transition"] if parsed else "")
    scope = _dd_text(payload, "alert_scope") or ((parsed["scope"] or "") if parsed else "")
    alert_id = _dd_text(payload, "alert_id")
    status: Status = "resolved" if transition.strip().lower() == "recovered" else "firing"
    moment = _epoch_ms(_dd_text(payload, "date"))

    labels = _scope_labels(scope)
    labels["alertname"] = name
    if scope:
        labels["scope"] = scope
    if alert_id:
        labels["monitor_id"] = alert_id
    identity = f"monitor:{alert_id}" if alert_id else f"title:{name}"
    event = AlertEvent(
        fingerprint=_digest(f"{identity}\n{scope}")[:16],
        name=name,
        labels=labels,
        status=status,
        severity=_datadog_severity(payload, transition, parsed["priority"] if parsed else None),
        summary=_datadog_summary(_dd_text(payload, "body")),
        starts_at=moment if status == "firing" else None,
        ends_at=moment if status == "resolved" else None,
        source="datadog",
    )
    group_key = _dd_text(payload, "aggreg_key") or f"datadog:{identity}"
    event_id = _dd_text(payload, "id")
    extra = {key: value for key in ("event_type", "id") if (value := _dd_text(payload, key))}
    if transition:
        extra["transition"] = transition
    return Notification(
        source="datadog",
        group_key=group_key,
        status=status,
        alerts=(event,),
        # Datadog's retries repeat the event id; without one, the transition at its moment is the delivery.
        delivery_key=_delivery_key("datadog", f"{group_key}\n{event_id}\n{transition}", [event]),
        extra=extra,
    )


def _dd_text(payload: Mapping[str, Any], key: str) -> str:
    """A template field as text: Datadog substitutes values into strings, but a template may leave a
    number unquoted ("date": $DATE). A variable left unfilled counts as absent."""
    value = payload.get(key)
    if value is None:
        return ""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else ""  # NaN and infinities say nothing
    if not isinstance(value, str):
        raise BadPayload(f"{key} is not text")
    value = value.strip()
    return "" if _UNFILLED.fullmatch(value) else value


def _datadog_severity(payload: Mapping[str, Any], transition: str, title_priority: str | None) -> Severity:
    """The priority when the monitor has one (people set it to say how urgent), else the alert type, else
    what the transition implies. A recovery's type is "success", which says nothing of the alert's weight."""
    priority = _dd_text(payload, "alert_priority") or title_priority or ""
    if priority:
        return Severity.parse(priority)
    alert_type = _dd_text(payload, "alert_type").lower()
    if alert_type in _DATADOG_TYPE_SEVERITY:
        return _DATADOG_TYPE_SEVERITY[alert_type]
    return Severity.parse(_DATADOG_TRANSITION_SEVERITY.get(transition.strip().lower()))


def _scope_labels(scope: str) -> dict[str, str]:
    """ "host:web1, env:prod" as labels; a tag without a value becomes a label with an empty one."""
    labels: dict[str, str] = {}
    for tag in scope.split(",")[:_MAX_TAGS]:
        key, _, value = tag.strip().partition(":")
        if key and key not in labels:
            labels[key] = value
    return labels


def _datadog_summary(body: str) -> str:
    """The first line of the monitor message that says something: Datadog wraps it in "%%%" markers and
    people put "@webhook-name" handles in it to route it, neither of which a reader needs."""
    for line in body.replace("%%%", "\n").splitlines():
        text = " ".join(word for word in line.split() if not word.startswith("@"))
        if text.strip(" -*#>"):
            return text
    return ""


def _epoch_ms(value: str) -> datetime | None:
    """$DATE: milliseconds since the epoch (seconds accepted too). Unreadable means unknown, not an error:
    the alert is still worth delivering."""
    try:
        number = float(value)
    except ValueError:
        return None
    seconds = number / 1000 if number > 1e11 else number  # 1e11 s is the year 5138: a bigger number is ms
    if not 0 < seconds < _LAST_EPOCH_S:
        return None
    return datetime.fromtimestamp(seconds, UTC)


# --- staleness --------------------------------------------------------------------------------------------------


def is_stale(incoming: AlertEvent, latest: AlertEvent | None) -> bool:
    """Whether `incoming` is older news than `latest`, the last state recorded for the same fingerprint.

    An alert's episode is known by its start: Alertmanager keeps `starts_at` for the life of an episode
    and a new one starts later. So:
    - a different, earlier start is an older episode: stale; a later start is a new one: fresh;
    - within an episode, after its resolution nothing is news: a late firing (the resolution overtook it)
      and a repeated resolution are stale; a firing that starts after the recorded end is a new episode
      (Datadog's recoveries carry an end but no start, so this is how a re-trigger is told apart);
    - while the episode fires, a repeat and the resolution are both fresh.
    Nothing recorded yet means fresh, whatever the status: a resolution that overtook its firing is handled.
    """
    if latest is None:
        return False
    new_start, old_start = incoming.starts_at, latest.starts_at
    if new_start is not None and old_start is not None and new_start != old_start:
        return new_start < old_start
    if latest.status == "resolved":
        if incoming.status == "firing" and new_start is not None and latest.ends_at is not None:
            return new_start <= latest.ends_at
        return True
    return False


def drop_stale(notification: Notification, latest: Mapping[str, AlertEvent]) -> Notification:
    """`notification` without the alerts `is_stale` against `latest` (fingerprint -> last recorded state),
    its status recomputed: "firing" while any fresh alert fires. The delivery key is kept (it names what
    arrived, not what is left). No alerts left means there is nothing to text."""
    fresh = tuple(a for a in notification.alerts if not is_stale(a, latest.get(a.fingerprint)))
    status: Status = "firing" if any(a.status == "firing" for a in fresh) else "resolved"
    return replace(notification, alerts=fresh, status=status)


# --- shared -----------------------------------------------------------------------------------------------------


def _load(body: bytes) -> dict[str, Any]:
    if len(body) > MAX_BODY_BYTES:
        raise BadPayload(f"body too large ({len(body)} bytes, limit {MAX_BODY_BYTES})")
    try:
        payload = json.loads(body)
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, and a number past the digit limit
        raise BadPayload("body is not JSON") from exc
    except RecursionError as exc:  # "[[[[…" nested past the interpreter's limit
        raise BadPayload("body is nested too deeply") from exc
    if not isinstance(payload, dict):
        raise BadPayload(f"body is a JSON {type(payload).__name__}, not an object")
    return payload


def _status(value: Any, where: str) -> Status:
    if value == "firing":
        return "firing"
    if value == "resolved":
        return "resolved"
    raise BadPayload(f"{where} is {_shown(value)}, not firing or resolved")


def _string_map(value: Any, where: str, required: bool) -> dict[str, str]:
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise BadPayload(f"{where} is not an object")
    if not all(isinstance(v, str) for v in value.values()):
        raise BadPayload(f"{where} has a value that is not text")
    return dict(value)


def _rfc3339(value: Any, where: str) -> datetime | None:
    """An Alertmanager timestamp (nanoseconds are cut to microseconds), or None for absent or Go's zero time."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise BadPayload(f"{where} is not text")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise BadPayload(f"{where} is not an RFC 3339 time") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return None if moment.year <= ZERO_TIME_YEAR else moment


def _delivery_key(source: str, group: str, alerts: Iterable[AlertEvent]) -> str:
    """A hash of what makes a delivery news: the group and, per alert, identity, status, start and end.
    Sorted by fingerprint, so the same alerts in another order are the same delivery."""
    parts = sorted((a.fingerprint, a.status, _iso(a.starts_at), _iso(a.ends_at)) for a in alerts)
    return _digest(json.dumps([source, group, parts], separators=(",", ":")))


def _iso(moment: datetime | None) -> str:
    return "" if moment is None else moment.isoformat()


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _shown(value: Any) -> str:
    """A payload value as an error may show it: clipped, printable ASCII, quoted."""
    if value is None:
        return "missing"
    if not isinstance(value, str):
        return f"a JSON {type(value).__name__}" if not isinstance(value, int | float) else safe(repr(value), 12)
    return f"'{safe(value, 12)}'"
