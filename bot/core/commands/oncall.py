"""On call: who holds the pager (oncall), taking it (take), and moving an alert up its escalation (escalate)."""

from __future__ import annotations

from bot.core.commands.alerting import alert_target
from bot.core.commands.registry import Answer, Request, command
from bot.oncall.service import Taken
from bot.state.protocols import STATE_UNAVAILABLE, StoreUnavailable
from intents.durations import format_duration
from intents.models import seconds_of
from monitors.formatting import safe

NOT_SET_UP = "On-call paging is not set up here: add schedules: and escalation: to the config."


def _schedules(request: Request) -> str:
    names = ", ".join(request.services.settings.schedules)
    return f"Schedules: {names}." if names else "No schedules are configured."


@command("oncall", usage="oncall [schedule]")
async def oncall(request: Request) -> Answer:
    """Who is on call now, until when, and who is next: "oncall", "oncall payments"."""
    service = request.services.oncall
    if service is None:
        return Answer(NOT_SET_UP)
    if not service.policies.rotations:
        return Answer("No schedules are configured, so nobody is on call by rotation.")
    name = request.parse.slots.get("schedule")
    if name and service.rotation(str(name)) is None:
        return Answer(f"No schedule named {safe(str(name), 30)}. {_schedules(request)}")
    try:
        lines = await service.who(str(name) if name else None)
    except StoreUnavailable:
        return Answer(STATE_UNAVAILABLE)
    return Answer("\n".join(lines))


@command("take", role="operator", usage="take <schedule> [duration]")
async def take(request: Request) -> Answer:
    """Take the pager of a schedule now, for a while or to the end of the shift: "take payments 4h"."""
    service = request.services.oncall
    if service is None:
        return Answer(NOT_SET_UP)
    name = request.parse.slots.get("schedule")
    if not name:
        return Answer(f"Which schedule? Text take <schedule> [duration]. {_schedules(request)}")
    duration = seconds_of(request.parse.slots, "duration_s")
    try:
        taken = await service.take(str(name), request.user, duration)
    except StoreUnavailable:
        return Answer(STATE_UNAVAILABLE)
    if not isinstance(taken, Taken):
        return Answer(f"{taken} {_schedules(request)}" if taken.startswith("No schedule") else taken)
    told = f" Told {', '.join(taken.told)}." if taken.told else ""
    span = f"for {format_duration(duration)}, " if duration else ""
    return Answer(f"You hold the {str(name).lower()} pager {span}until {taken.until}.{told}")


@command("escalate", role="operator", usage="escalate <number|alert>")
async def escalate(request: Request) -> Answer:
    """Page the next step of an alert's escalation now: "escalate 2"."""
    service = request.services.oncall
    if service is None or not service.policies.paging:
        return Answer(NOT_SET_UP)
    target = await alert_target(request)
    if isinstance(target, Answer):
        return target
    user = request.services.settings.users.get(request.user)
    who = user.name if user is not None and user.name else "someone"
    try:
        done = await service.escalate(target.fingerprint, who)
    except StoreUnavailable:
        return Answer(STATE_UNAVAILABLE)
    return Answer(f"{target.description} {done}" if not done.startswith("step") else
                  f"Escalated {target.description}: {done}")  # fmt: skip
