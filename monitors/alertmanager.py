"""Alertmanager: the numbered list of open alerts, and silences made from one alert's labels.

The list is numbered for replies ("ack 2"), so its order must not depend on how Alertmanager
happens to return alerts: grouped by alert name, oldest first. A silence matches every label of
the alert it was made from, so it mutes that alert and nothing else.

The class speaks Alertmanager's v2 API under `api` with the headers it is given; Grafana's own
Alertmanager serves the same API under another prefix, behind a token (`monitors.grafana`).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field

from monitors.base import Alert, AlertList, AlertQuery, Health, Kind, Query, Result
from monitors.errors import BackendError, BackendQueryError, BadBackendResponse, scrub
from monitors.formatting import duration, safe
from monitors.http import HttpBackend, dig, parse_json
from monitors.registry import BuildContext

STATES = ("firing", "silenced", "all")
FILTERS = {
    "firing": {"active": "true", "silenced": "false", "inhibited": "false"},
    "silenced": {"active": "false", "silenced": "true", "inhibited": "false"},
    "all": {"active": "true", "silenced": "true", "inhibited": "false"},
}
"""Query parameters per state. Inhibited alerts are left out: the alert inhibiting them is listed."""

MAX_SHOWN = 8
"""Alerts listed in one reply; the rest are counted."""
MAX_REPLY = 300
"""Characters a list reply aims to stay under; lines stop early when they would not fit."""
MAX_SILENCE_S = 366 * 86400
TELLING = ("service", "instance", "job")
"""Labels whose values say where an alert is, in the order they are shown (two at most)."""
FOOTER = "Reply ack N or silence N 1h"

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)
_PORT = re.compile(r":\d+$")


class AlertmanagerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelled key is refused, not ignored

    url: str
    timeout_s: float = Field(3.0, gt=0, le=30)


def _error_reason(body: Any) -> str | None:
    """Alertmanager refuses with a bare JSON string (400) or a swagger {"code", "message"} (422)."""
    if isinstance(body, str):
        return scrub(body)
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return scrub(body["message"])
    return None


class Alertmanager:
    display = "Alertmanager"
    system = "alertmanager"
    kinds = frozenset({Kind.ALERTS})
    api = "/api/v2"
    """Where the v2 API is, under the configured URL."""
    silence_created: tuple[int, ...] = (200,)
    """The statuses that answer a created silence (Grafana's is 202)."""

    def __init__(
        self, name: str, config: AlertmanagerConfig, client: httpx.AsyncClient, headers: Mapping[str, str] | None = None
    ) -> None:
        self.name = name
        self.timeout_s = config.timeout_s
        self.http = HttpBackend(self.display, client, config.url, config.timeout_s, headers, self._reason)

    def _reason(self, body: Any) -> str | None:
        """The backend's own short reason in an error answer."""
        return _error_reason(body)

    async def health(self) -> Health:
        status, _ = await self.http.request("GET", "/-/ready", ok=(200, 503))
        return Health(True, "ready") if status == 200 else Health(False, "not ready")

    async def query(self, request: Query) -> Result:
        if not isinstance(request, AlertQuery):
            raise BackendQueryError(self.display, "only alerts")
        state = (request.state or "firing").lower()
        if state not in FILTERS:
            raise BackendQueryError(self.display, f"state must be one of {', '.join(STATES)}")
        answer = await self.http.get_json(f"{self.api}/alerts", params=FILTERS[state])
        alerts = [self._alert(item) for item in _list(self.display, answer)]
        return AlertList(request, tuple(sorted(alerts, key=_order)))

    def format(self, result: Result) -> str:
        assert isinstance(result, AlertList)
        return format_alerts(result, time.time())

    async def create_silence(self, alert: Alert, duration_s: int, created_by: str, comment: str) -> str:
        """Silences exactly this alert (every one of its labels must match) from now; the silence's id."""
        if not alert.labels:
            raise BackendQueryError(self.display, "alert has no labels to match")
        if not 0 < duration_s <= MAX_SILENCE_S:
            raise BackendQueryError(self.display, "silence duration out of range")
        now = time.time()
        body = {
            "matchers": [
                {"name": name, "value": value, "isEqual": True, "isRegex": False}
                for name, value in sorted(alert.labels.items())
            ],
            "startsAt": _timestamp(now),
            "endsAt": _timestamp(now + duration_s),
            "createdBy": created_by,
            "comment": comment,
        }
        _, raw = await self.http.request("POST", f"{self.api}/silences", json_body=body, ok=self.silence_created)
        answer = parse_json(self.display, raw)
        silence_id = dig(self.display, answer, "silenceID", kind=str)
        if not _UUID.fullmatch(silence_id):
            raise BadBackendResponse(self.display, "odd silence id")
        return str(silence_id)

    async def expire_silence(self, silence_id: str) -> None:
        """Ends a silence now; ending one that has already ended is not an error."""
        if not _UUID.fullmatch(silence_id):
            raise BackendQueryError(self.display, "not a silence id")
        status, body = await self.http.request("DELETE", f"{self.api}/silence/{silence_id}", ok=(200, 500))
        if status == 500:
            # 0.25 answers an unknown id with 500 and the JSON string "silence not found"; later versions
            # (and Grafana's) refuse to expire an expired silence with 500 "silence … already expired".
            reason = self._reason_of(body)
            if reason and "already expired" in reason:
                return
            if reason and "not found" in reason:
                raise BackendQueryError(self.display, reason)
            raise BackendError(self.display, "HTTP 500")

    def _reason_of(self, body: bytes) -> str | None:
        try:
            return self._reason(json.loads(body))
        except ValueError:
            return None

    async def silences(self) -> list[dict[str, Any]]:
        """Every silence Alertmanager still keeps (active, pending and recently expired), as it sends them."""
        answer = await self.http.get_json(f"{self.api}/silences")
        items = _list(self.display, answer)
        if not all(isinstance(item, dict) for item in items):
            raise BadBackendResponse(self.display, "silence is not an object")
        return [dict(item) for item in items]

    def _alert(self, item: Any) -> Alert:
        labels = _strings(self.display, dig(self.display, item, "labels", kind=dict))
        annotations = item.get("annotations")
        annotations = {} if annotations is None else annotations
        if not isinstance(annotations, dict):
            raise BadBackendResponse(self.display, "annotations are not an object")
        status = dig(self.display, item, "status", kind=dict)
        silenced = bool(status.get("silencedBy")) or status.get("state") == "suppressed"
        return Alert(
            name=labels.get("alertname", ""),
            labels=labels,
            state="silenced" if silenced else "firing",
            starts_at=_epoch(self.display, item.get("startsAt")),
            summary=str(annotations.get("summary") or annotations.get("description") or ""),
            fingerprint=str(item.get("fingerprint") or ""),
            source=self.system,
        )


def _order(alert: Alert) -> tuple[str, float, str]:
    return alert.name, alert.starts_at if alert.starts_at is not None else 0.0, alert.fingerprint


def format_alerts(result: AlertList, now: float) -> str:
    """ "2 firing:\\n1) HighCPU checkout 12m\\n2) DiskFull db1 3h\\nReply ack N or silence N 1h"."""
    state = (result.query.state or "firing").lower()
    alerts = result.alerts
    if not alerts:
        return {"silenced": "No alerts silenced.", "all": "No alerts firing or silenced."}.get(
            state, "No alerts firing."
        )
    silenced = sum(1 for a in alerts if a.state == "silenced")
    head = {
        "firing": f"{len(alerts)} firing:",
        "silenced": f"{len(alerts)} silenced:",
    }.get(state, f"{len(alerts)} alerts ({silenced} silenced):" if silenced else f"{len(alerts)} firing:")
    footer = FOOTER if silenced < len(alerts) else ""
    lines = [_line(number, alert, now, mark=state == "all") for number, alert in enumerate(alerts, 1)]
    if len(alerts) == 1 and alerts[0].summary:
        lines[0] += f": {safe(scrub(alerts[0].summary), 60)}"  # a runbook or dashboard link stays out
    shown = _fitting(lines, budget=MAX_REPLY - len(head) - len(footer) - len(" +NN more") - 3)
    more = len(alerts) - len(shown)
    tail = [f"+{more} more"] if more else []
    return "\n".join([head, *shown, *tail] + ([footer] if footer else []))


def _fitting(lines: list[str], budget: int) -> list[str]:
    """The first lines (at least one, at most MAX_SHOWN) whose total length stays within `budget`."""
    shown: list[str] = []
    used = 0
    for line in lines[:MAX_SHOWN]:
        used += len(line) + 1
        if shown and used > budget:
            break
        shown.append(line)
    return shown


def _line(number: int, alert: Alert, now: float, mark: bool) -> str:
    parts = [f"{number})", safe(alert.name, 30) or "(unnamed)", *_where(alert.labels)]
    if alert.starts_at is not None:
        parts.append(duration(now - alert.starts_at))
    if mark and alert.state == "silenced":
        parts.append("silenced")
    return " ".join(p for p in parts if p)


def _where(labels: Mapping[str, str]) -> list[str]:
    """The telling labels' values, shortened: "db1:9100" and "http://db1.internal:9100/x" read "db1", "db1.internal"."""
    values: list[str] = []
    for key in TELLING:
        if key in labels:
            value = safe(_shortened(labels[key], key == "instance"), 24)
            if value and value not in values:
                values.append(value)
        if len(values) == 2:
            break
    return values


def _shortened(value: str, is_address: bool) -> str:
    """A URL becomes its host (no link, no token in an SMS); an address loses its port."""
    value = value.strip()
    if _SCHEME.match(value):
        value, is_address = re.split(r"[/?#]", _SCHEME.sub("", value), maxsplit=1)[0], True
    return (_PORT.sub("", value) if is_address else value) or value


def _list(display: str, answer: Any) -> list[Any]:
    if not isinstance(answer, list):
        raise BadBackendResponse(display, f"unexpected {type(answer).__name__} in answer")
    return answer


def _strings(display: str, raw: Mapping[Any, Any]) -> dict[str, str]:
    if not all(isinstance(v, str) for v in raw.values()):
        raise BadBackendResponse(display, "label value is not a string")
    return {str(k): v for k, v in raw.items()}


def _epoch(display: str, raw: Any) -> float | None:
    if raw is None:
        return None
    try:
        moment = datetime.fromisoformat(str(raw))
    except ValueError as exc:
        raise BadBackendResponse(display, "odd timestamp") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return None if moment.year <= 1 else moment.timestamp()


def _timestamp(epoch: float) -> str:
    """RFC 3339 in UTC with milliseconds, as Alertmanager writes them."""
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def build(name: str, config: Mapping[str, Any], context: BuildContext) -> Alertmanager:
    return Alertmanager(name, AlertmanagerConfig(**config), context.client)
