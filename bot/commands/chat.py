"""Conversation commands: more, reset, and the reply to a text that was not understood."""

from __future__ import annotations

from bot.commands.registry import Answer, Request, command
from bot.pages import PageStore


@command("more", usage="more")
async def more(request: Request) -> Answer:
    """The next page of a long answer."""
    pages: PageStore | None = request.resources.get("pages")
    following = await pages.next(request.user) if pages is not None else None
    if following is None:
        return Answer("Nothing more to show.")
    return Answer(following[0])


@command("reset", usage="reset")
async def reset(request: Request) -> Answer:
    """Forgets this conversation, so follow-ups start fresh."""
    return Answer("OK, starting fresh.")


@command("unknown", usage="")
async def unknown(request: Request) -> Answer:
    """A text that matched no command: offer the closest one, or point at HELP."""
    suggestion = request.parse.suggestion
    if suggestion:
        return Answer(f"Did you mean: {suggestion}? Reply Y")
    return Answer("Sorry, I didn't get that. Text HELP for what I can do.")
