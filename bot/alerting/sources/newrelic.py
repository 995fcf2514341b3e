"""New Relic workflows' webhook as a `Notification` of one alert: the issue.

A workflow's webhook body is a Handlebars template the user edits; New Relic's default one
(`NEWRELIC_PAYLOAD_TEMPLATE`, as tests/fixtures/newrelic/workflow_webhook_template.txt records it) is the
one understood, and the README tells people to keep it. Fields it does not have are not looked for;
fields it has and we do not need (`totalIncidents`, `isCorrelated`, `sources`) are not checked.

How it reads:
- The issue id is the alert's identity (its fingerprint) for the issue's whole life: New Relic never
  reopens a closed issue, a new problem is a new issue. `createdAt` is when its episode started.
- `state` CREATED or ACTIVATED pages, CLOSED resolves. DEACTIVATED (the issue stopped being active
  without closing) and an ACKNOWLEDGED trigger (someone took it in New Relic) are accepted and text
  nobody: neither is a reason to wake a person, and the issue stays open here until it closes.
- The delivery key is the issue, its status and its times, not `updatedAt` or the trigger: the
  CREATED and ACTIVATED of one issue, and the updates that follow (an incident added, the priority
  changed), page once; after the repeat window (`DEDUP_TTL_S`) a still-open issue that nobody acked
  here texts again, as Alertmanager's reminders do. A retry of the CLOSED is the same delivery.
- `priority` gives the severity: CRITICAL is critical, HIGH and MEDIUM warning (New Relic gives HIGH to a
  condition's warning threshold), LOW info.
- The name is the alert condition's, the summary the issue title; the impacted entities are the
  `scope` label (where it is), the first policy the `policy` label, the severity the `severity` label.
- `issueUrl` is never read: no link reaches a text.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from bot.alerting.model import AlertEvent, Notification, Severity, Status
from bot.alerting.sources.common import BadPayload, delivery_key, load_json, shown
from monitors.formatting import clip

NEWRELIC_PAYLOAD_TEMPLATE = """\
{
  "id": {{ json issueId }},
  "issueUrl": {{ json issuePageUrl }},
  "title": {{ json annotations.title.[0] }},
  "priority": {{ json priority }},
  "impactedEntities": {{json entitiesData.names}},
  "totalIncidents": {{json totalIncidents}},
  "state": {{ json state }},
  "trigger": {{ json triggerEvent }},
  "isCorrelated": {{ json isCorrelated }},
  "createdAt": {{ createdAt }},
  "updatedAt": {{ updatedAt }},
  "sources": {{ json accumulations.source }},
  "alertPolicyNames": {{ json accumulations.policyName }},
  "alertConditionNames": {{ json accumulations.conditionName }},
  "workflowName": {{ json workflowName }}
}
"""
"""The workflow's webhook payload to keep (Destination: webhook; this is New Relic's default template)."""

FIRING_STATES = frozenset({"CREATED", "ACTIVATED"})
RESOLVED_STATES = frozenset({"CLOSED"})
QUIET_STATES = frozenset({"DEACTIVATED"})
QUIET_TRIGGERS = frozenset({"ACKNOWLEDGED"})
PRIORITY_SEVERITY = {
    "CRITICAL": Severity.CRITICAL,
    "HIGH": Severity.WARNING,
    "MEDIUM": Severity.WARNING,
    "LOW": Severity.INFO,
}
MAX_ID = 128
"""Longest issue id taken (New Relic's are UUIDs): the id is a key in every store."""
MAX_NAMES = 10
"""Entities, policies and conditions read from one payload; a correlated issue may list many."""
_EXTRA_LIMIT = 80
_LAST_EPOCH_S = datetime(9999, 12, 31, tzinfo=UTC).timestamp()


def parse_newrelic(body: bytes) -> Notification:
    """A New Relic workflow webhook body (the default payload template) as a `Notification` of one alert,
    or of none for an update that pages nobody (DEACTIVATED, ACKNOWLEDGED).

    Raises BadPayload for a body that is not a JSON object, has no issue id or a state we do not know,
    or holds a field of the wrong type.
    """
    payload = load_json(body)
    issue = _text(payload, "id")
    if not issue:
        raise BadPayload("New Relic payload has no issue id")
    if len(issue) > MAX_ID:
        raise BadPayload("id is too long for an issue id")
    state = _text(payload, "state").upper()
    if state not in FIRING_STATES | RESOLVED_STATES | QUIET_STATES:
        raise BadPayload(f"state is {shown(state or None)}, not CREATED, ACTIVATED or CLOSED")
    trigger = _text(payload, "trigger").upper()
    title = _text(payload, "title")
    conditions = _names(payload, "alertConditionNames")
    policies = _names(payload, "alertPolicyNames")
    entities = _names(payload, "impactedEntities")
    priority = _text(payload, "priority").upper()
    created = _moment(payload, "createdAt")
    updated = _moment(payload, "updatedAt")
    status: Status = "resolved" if state in RESOLVED_STATES else "firing"

    name = conditions[0] if conditions else title or "New Relic issue"
    labels = {"alertname": name}
    if entities:
        labels["scope"] = ", ".join(entities)
    if policies:
        labels["policy"] = policies[0]
    severity = PRIORITY_SEVERITY.get(priority) or Severity.parse(priority)
    labels["severity"] = severity.name.lower()
    event = AlertEvent(
        fingerprint=issue,
        name=name,
        labels=labels,
        status=status,
        severity=severity,
        summary=title if title != name else "",
        starts_at=created,
        ends_at=(updated or created) if status == "resolved" else None,
        source="newrelic",
    )
    group_key = f"newrelic:{issue}"
    kept = (("state", state), ("trigger", trigger), ("workflow", _text(payload, "workflowName")))
    extra = {key: clip(value, _EXTRA_LIMIT) for key, value in kept if value}
    if state in QUIET_STATES or trigger in QUIET_TRIGGERS:
        # Nothing to text. Its own delivery key, so that it never stands for the page it follows.
        return Notification("newrelic", group_key, "resolved", (),
                            delivery_key("newrelic", f"{group_key}\n{state}\n{trigger}", [event]), extra)  # fmt: skip
    return Notification(
        source="newrelic",
        group_key=group_key,
        status=status,
        alerts=(event,),
        delivery_key=delivery_key("newrelic", group_key, [event]),
        extra=extra,
    )


def _text(payload: Mapping[str, Any], key: str) -> str:
    """A template field as text; null (a Handlebars value New Relic had nothing for) counts as absent."""
    value = payload.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadPayload(f"{key} is not text")
    return value.strip()


def _names(payload: Mapping[str, Any], key: str) -> list[str]:
    """A list of names (`{{json accumulations.conditionName}}`): the first `MAX_NAMES`, blanks dropped,
    each repeated once."""
    value = payload.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadPayload(f"{key} is not a list of text")
    return list(dict.fromkeys(v.strip() for v in value if v.strip()))[:MAX_NAMES]


def _moment(payload: Mapping[str, Any], key: str) -> datetime | None:
    """`createdAt`/`updatedAt`: milliseconds since the epoch, as a number (the template leaves them
    unquoted) or digits. Out of range means unknown, not an error: the issue is still worth delivering."""
    value = payload.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise BadPayload(f"{key} is not a time")
    try:
        number = float(value)
    except (ValueError, OverflowError):  # "soon", and an integer past what a float holds
        return None
    seconds = number / 1000 if number > 1e11 else number  # 1e11 s is the year 5138: a bigger number is ms
    if not 0 < seconds < _LAST_EPOCH_S:  # NaN fails this too
        return None
    return datetime.fromtimestamp(seconds, UTC)
