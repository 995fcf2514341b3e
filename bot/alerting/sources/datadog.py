"""Datadog's webhook as a `Notification` of one alert (Datadog sends one per monitor group and transition).

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

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from bot.alerting.model import AlertEvent, Notification, Severity, Status
from bot.alerting.sources.common import BadPayload, delivery_key, digest, load_json

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


def parse_datadog(body: bytes) -> Notification:
    """A Datadog webhook body, from the default payload template or `DATADOG_PAYLOAD_TEMPLATE`, as a
    `Notification` of one alert (Datadog sends one webhook per monitor group and transition).

    Raises BadPayload for a body that is not a JSON object, holds a field of the wrong type, or has no title.
    """
    payload = load_json(body)
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
        fingerprint=digest(f"{identity}\n{scope}")[:16],
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
        delivery_key=delivery_key("datadog", f"{group_key}\n{event_id}\n{transition}", [event]),
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
