"""Compact JSON for what the Redis stores keep: contexts, alert events, proposals and done writes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import cast

from bot.alerting.model import AlertEvent, Done, OpenAlert, Proposal, Severity
from bot.state.redis.client import dumps, text_of
from intents.models import Context, Intent, SlotValue


def context_to_json(context: Context) -> str:
    """Compact JSON for a Context; defaults are left out (most contexts are two or three fields)."""
    data: dict[str, object] = {}
    if context.intent is not None:
        data["i"] = context.intent.value
    if context.slots:
        data["s"] = {name: list(value) if isinstance(value, tuple) else value for name, value in context.slots.items()}
    if context.suggestion is not None:
        data["g"] = context.suggestion
    if context.pending_code is not None:
        data["c"] = context.pending_code
    if context.alerts:
        data["a"] = list(context.alerts)
    return dumps(data)


def context_from_json(text: str | bytes) -> Context:
    """The Context `context_to_json` wrote. Raises ValueError for anything else (a foreign or older value)."""
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("context is not an object")
    intent = data.get("i")
    slots: dict[str, SlotValue] = {}
    for name, value in as_object(data.get("s", {})).items():
        if isinstance(value, list):
            slots[name] = as_strings(value)
        elif isinstance(value, str | int) and not isinstance(value, bool):
            slots[name] = value
        else:
            raise ValueError("slot value of an unknown type")
    return Context(
        intent=None if intent is None else Intent(intent),
        slots=slots,
        suggestion=optional_str(data.get("g")),
        pending_code=optional_str(data.get("c")),
        alerts=as_strings(data.get("a", [])),
    )


def as_object(value: object) -> dict[str, object]:
    if not isinstance(value, dict):
        raise ValueError("expected an object")
    return value


def as_strings(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError("expected a list of strings")
    return tuple(value)


def optional_str(value: object) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ValueError("expected a string")
    return value


# --- open alerts --------------------------------------------------------------------------------------

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def micros(moment: datetime | None) -> str:
    """Exact integer microseconds (as text) for comparing times in a script; naive times are read as UTC."""
    if moment is None:
        return ""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return str((aware - EPOCH) // timedelta(microseconds=1))


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def from_iso(value: object) -> datetime | None:
    return None if value is None else datetime.fromisoformat(str(value))


def event_to_json(event: AlertEvent) -> str:
    return dumps({"f": event.fingerprint, "n": event.name, "l": dict(event.labels), "st": event.status,
                   "sv": int(event.severity), "su": event.summary, "s": iso(event.starts_at),
                   "e": iso(event.ends_at), "src": event.source})  # fmt: skip


def event_from_json(text: str | bytes) -> AlertEvent:
    data = as_object(json.loads(text))
    status = data["st"]
    if status not in ("firing", "resolved"):
        raise ValueError("unknown alert status")
    labels = as_object(data["l"])
    return AlertEvent(
        fingerprint=str(data["f"]),
        name=str(data["n"]),
        labels={str(k): str(v) for k, v in labels.items()},
        status=status,
        severity=Severity(cast(int, data["sv"])),
        summary=str(data["su"]),
        starts_at=from_iso(data.get("s")),
        ends_at=from_iso(data.get("e")),
        source=str(data["src"]),
    )


def open_alert(event: str | bytes, first_seen: str | bytes, ack: str | bytes | None) -> OpenAlert:
    acked_by = acked_at = None
    if ack is not None:
        at, _, who = text_of(ack).partition(" ")
        acked_by, acked_at = who, float(at)
    return OpenAlert(event_from_json(event), float(text_of(first_seen)), acked_by, acked_at)


def proposal_json(proposal: Proposal) -> str:
    return dumps({"c": proposal.code, "f": proposal.fingerprint, "d": proposal.description,
                   "s": proposal.duration_s, "t": proposal.text, "a": proposal.at})  # fmt: skip


def proposal_from(text: str | bytes) -> Proposal:
    data = as_object(json.loads(text))
    return Proposal(str(data["c"]), str(data["f"]), str(data["d"]), int(cast(int, data["s"])), str(data["t"]),
                    float(cast(float, data["a"])))  # fmt: skip


def done_json(done: Done) -> str:
    return dumps({"k": done.kind, "f": done.fingerprint, "d": done.description, "a": done.at, "i": done.silence_id})


def done_from(text: str | bytes) -> Done:
    data = as_object(json.loads(text))
    kind = data["k"]
    if kind not in ("silence", "ack"):
        raise ValueError("unknown kind of action")
    silence_id = data.get("i")
    return Done(kind, str(data["f"]), str(data["d"]), float(cast(float, data["a"])),
                None if silence_id is None else str(silence_id))  # fmt: skip
