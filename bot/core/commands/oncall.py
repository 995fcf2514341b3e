"""On call: who holds the pager (oncall), taking it (take), and moving an alert up its escalation (escalate)."""

from __future__ import annotations

from bot.core.commands.registry import Answer, Request, command

NOT_SET_UP = "On-call paging is not set up here: add schedules: and escalation: to the config."


@command("oncall", usage="oncall [schedule]")
async def oncall(request: Request) -> Answer:
    """Who is on call now, until when, and who is next: "oncall", "oncall payments"."""
    return Answer(NOT_SET_UP)


@command("take", role="operator", usage="take <schedule> [duration]")
async def take(request: Request) -> Answer:
    """Take the pager of a schedule now, for a while or to the end of the shift: "take payments 4h"."""
    return Answer(NOT_SET_UP)


@command("escalate", role="operator", usage="escalate <number|alert>")
async def escalate(request: Request) -> Answer:
    """Page the next step of an alert's escalation now: "escalate 2"."""
    return Answer(NOT_SET_UP)
