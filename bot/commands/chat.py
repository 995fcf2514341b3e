"""Conversation commands: more, reset, and the reply to a text that was not understood."""

from __future__ import annotations

from bot.commands.registry import Answer, Request, command


@command("more", usage="more")
async def more(request: Request) -> Answer:
    """The next page of a long answer."""
    return Answer("Nothing more to show.")


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
