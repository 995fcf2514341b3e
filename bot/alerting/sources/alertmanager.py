"""Alertmanager's webhook (payload version "4") as a `Notification`: one per alert group, each alert
keeping Alertmanager's fingerprint, and the alerts Alertmanager or we left out counted.

`parse_group` reads the group and its alerts for any sender of Alertmanager's notification shape:
Grafana's webhook contact point (payload version "1", `bot.alerting.sources.grafana`) is the same
group with more fields beside it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from bot.alerting.model import AlertEvent, Notification, Severity
from bot.alerting.sources.common import (
    BadPayload,
    delivery_key,
    digest,
    load_json,
    rfc3339,
    shown,
    status_of,
    string_map,
)

MAX_ALERTS = 1000
"""Alerts kept from one payload; the rest are counted in `extra["truncated_alerts"]`, not parsed. Setting
`max_alerts` on Alertmanager's webhook receiver makes it trim (and count) them before sending."""


def parse_alertmanager(body: bytes) -> Notification:
    """Alertmanager's webhook body (payload version "4") as a `Notification`.

    Raises BadPayload for another version, a body that is not JSON or too big, and any field of the wrong
    type. Alerts past `MAX_ALERTS` are counted, not parsed; so is Alertmanager's own `truncatedAlerts`.
    """
    payload = load_json(body)
    version = payload.get("version")
    if version != "4":
        raise BadPayload(f"unsupported Alertmanager payload version {shown(version)}")
    return parse_group(payload, "alertmanager")


def parse_group(payload: Mapping[str, Any], source: str, extra: Mapping[str, str] | None = None) -> Notification:
    """The alert group of an Alertmanager-shaped notification (status, groupKey, alerts, truncatedAlerts,
    receiver), its alerts marked as coming from `source`. Only these fields are read: links beside them
    (externalURL, generatorURL, Grafana's silenceURL …) never reach a `Notification`."""
    status = status_of(payload.get("status"), "status")
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
        alert = _alert(raw, index, source)
        if alert.fingerprint not in seen:  # the same alert twice in one group says nothing more
            seen.add(alert.fingerprint)
            alerts.append(alert)
    kept = {"receiver": payload["receiver"]} if isinstance(payload.get("receiver"), str) else {}
    kept.update(extra or {})
    if truncated:
        kept["truncated_alerts"] = str(truncated)
    return Notification(
        source=source,
        group_key=group_key,
        status=status,
        alerts=tuple(alerts),
        delivery_key=delivery_key(source, group_key, alerts),
        extra=kept,
    )


def _alert(raw: Any, index: int, source: str) -> AlertEvent:
    where = f"alerts[{index}]"
    if not isinstance(raw, dict):
        raise BadPayload(f"{where} is not an object")
    labels = string_map(raw.get("labels"), f"{where}.labels", required=True)
    annotations = string_map(raw.get("annotations"), f"{where}.annotations", required=False)
    fingerprint = raw.get("fingerprint")
    if fingerprint is None or fingerprint == "":
        fingerprint = _labels_fingerprint(labels)
    elif not isinstance(fingerprint, str):
        raise BadPayload(f"{where}.fingerprint is not text")
    return AlertEvent(
        fingerprint=fingerprint,
        name=labels.get("alertname", ""),
        labels=labels,
        status=status_of(raw.get("status"), f"{where}.status"),
        severity=Severity.parse(labels.get("severity")),
        summary=annotations.get("summary") or annotations.get("description") or "",
        starts_at=rfc3339(raw.get("startsAt"), f"{where}.startsAt"),
        ends_at=rfc3339(raw.get("endsAt"), f"{where}.endsAt"),
        source=source,
    )


def _labels_fingerprint(labels: Mapping[str, str]) -> str:
    """Alertmanager-like identity when a sender left the fingerprint out: a hash of the sorted label set."""
    return digest(json.dumps(sorted(labels.items()), separators=(",", ":")))[:16]
