"""Conversation commands: more, reset, and the reply to a text that was not understood."""

from __future__ import annotations

from bot.alerting.texts import alert_name, label_value
from bot.core.commands.registry import Answer, Request, command
from bot.state.protocols import StoreUnavailable
from monitors.formatting import safe


@command("more", usage="more")
async def more(request: Request) -> Answer:
    """The next page of a long answer."""
    pages = request.services.pages
    try:
        following = await pages.next(request.user) if pages is not None else None
    except StoreUnavailable:
        following = None
    if following is None:
        return Answer("Nothing more to show.")
    return Answer(following[0])


@command("reset", usage="reset")
async def reset(request: Request) -> Answer:
    """Forgets this conversation, so follow-ups start fresh."""
    return Answer("OK, starting fresh.")


_ALERT_VERBS = frozenset({"ack", "acknowledge", "silence", "mute", "snooze"})


@command("unknown", usage="")
async def unknown(request: Request) -> Answer:
    """A text that matched no command: offer the closest one, or point at HELP."""
    suggestion = request.parse.suggestion
    choices = await _alert_choices(request) if suggestion == "alerts" else None
    if choices:
        return Answer(choices)
    if suggestion:
        return Answer(f"Did you mean: {suggestion}? Reply Y")
    return Answer("Sorry, I didn't get that. Text HELP for what I can do.")


async def _alert_choices(request: Request) -> str | None:
    """ "ack" alone, with several alerts numbered for this person: list them instead of guessing."""
    words = request.text.lower().split()
    if not words or words[0] not in _ALERT_VERBS or not request.context.alerts:
        return None
    book = request.services.alerts
    lines = []
    for number, fingerprint in enumerate(request.context.alerts[:8], 1):
        known = await book.get(fingerprint) if book is not None else None
        if known is None:
            lines.append(f"{number}) {safe(fingerprint[:12], 12)}")
            continue
        places = (label_value(known.event.labels.get(k, ""), 30) for k in ("service", "instance", "job"))
        where = next((place for place in places if place), "")
        lines.append(f"{number}) {alert_name(known.event.name, 40)} {where}".rstrip())
    return f"Which one? Reply {words[0]} N:\n" + "\n".join(lines)
