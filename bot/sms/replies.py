"""Turning a command's answer into what goes back by SMS: plain GSM-7, a note of what was assumed,
and pages of at most a few segments, the rest kept for "more".

The webhook and `operator chat` both finish replies here, so the terminal shows exactly what a
phone would get.
"""

from __future__ import annotations

from bot.core.conversation import Reply
from bot.sms.encoding import fold, paginate
from bot.state.protocols import PageStore, StoreUnavailable
from intents.durations import format_duration
from intents.models import Intent

MORE_HINT = "\n(reply MORE for the rest)"
_NOTED = ("service", "level", "range_s")


def context_note(reply: Reply) -> str:
    """ "[checkout, 1h]": the values a follow-up took from the previous command, or ""."""
    values = []
    for name in _NOTED:
        if name in reply.context_used and name in reply.parse.slots:
            value = reply.parse.slots[name]
            values.append(format_duration(value) if name == "range_s" and isinstance(value, int) else str(value))
    return f"[{', '.join(values)}]" if values else ""


class SmsReplies:
    def __init__(self, pages: PageStore, max_segments: int = 3, allow_emoji: bool = False) -> None:
        self.pages = pages
        self.max_segments = max_segments
        self.allow_emoji = allow_emoji

    def paginate(self, reply: Reply) -> tuple[str, list[str] | None]:
        """The first page to send now and the later ones to keep for "more" (None: keep what is kept, as
        "more" itself does). No I/O: the webhook stores them with the text's other outcome in one step."""
        note = context_note(reply)
        text = f"{note} {reply.text}" if note else reply.text
        pages = paginate(fold(text, allow_unicode=self.allow_emoji), self.max_segments, MORE_HINT)
        return pages[0], (None if reply.parse.intent is Intent.MORE else pages[1:])

    async def finish(self, user: str, reply: Reply) -> str:
        """The first page to send now; later pages wait for "more" (a new answer replaces them)."""
        first, rest = self.paginate(reply)
        if rest is not None:
            try:
                await self.pages.keep(user, rest)
            except StoreUnavailable:
                pass  # the first page still goes out; "more" will say there is nothing more
        return first
