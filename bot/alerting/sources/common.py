"""What every alert source's parser shares: the bounded JSON body, typed field checks that fail as
`BadPayload`, timestamps, delivery keys, and the staleness of an out-of-order delivery."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from bot.alerting.model import AlertEvent, Notification, Status
from monitors.formatting import safe

MAX_BODY_BYTES = 4 * 1024 * 1024
"""Largest webhook body parsed. Alertmanager's 1,000 alerts with long annotations stay well under it; the
route should stop reading at this size rather than buffer more and hand it here."""
ZERO_TIME_YEAR = 1
"""Go's zero time ("0001-01-01T00:00:00Z") is how Alertmanager writes "no end yet"."""


class BadPayload(ValueError):
    """A webhook body that is not a notification we understand. The message is short, fixed-form text
    (no payload content beyond a clipped, sanitised value), fit for a 400 answer and a log line."""


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


# --- payload helpers -------------------------------------------------------------------------------------------


def load_json(body: bytes) -> dict[str, Any]:
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


def status_of(value: Any, where: str) -> Status:
    if value == "firing":
        return "firing"
    if value == "resolved":
        return "resolved"
    raise BadPayload(f"{where} is {shown(value)}, not firing or resolved")


def string_map(value: Any, where: str, required: bool) -> dict[str, str]:
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise BadPayload(f"{where} is not an object")
    if not all(isinstance(v, str) for v in value.values()):
        raise BadPayload(f"{where} has a value that is not text")
    return dict(value)


def rfc3339(value: Any, where: str) -> datetime | None:
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


def delivery_key(source: str, group: str, alerts: Iterable[AlertEvent]) -> str:
    """A hash of what makes a delivery news: the group and, per alert, identity, status, start and end.
    Sorted by fingerprint, so the same alerts in another order are the same delivery."""
    parts = sorted((a.fingerprint, a.status, _iso(a.starts_at), _iso(a.ends_at)) for a in alerts)
    return digest(json.dumps([source, group, parts], separators=(",", ":")))


def _iso(moment: datetime | None) -> str:
    return "" if moment is None else moment.isoformat()


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def shown(value: Any) -> str:
    """A payload value as an error may show it: clipped, printable ASCII, quoted."""
    if value is None:
        return "missing"
    if not isinstance(value, str):
        return f"a JSON {type(value).__name__}" if not isinstance(value, int | float) else safe(repr(value), 12)
    return f"'{safe(value, 12)}'"
