"""Alert actions: silence, ack, confirm, undo, subscribe, unsubscribe (listing is in `monitoring`).

Writes (silence, ack, undo) need the operator role; the registry enforces it before the handler
runs. Until Alertmanager and delivery are wired in they answer honestly that nothing can be done.
"""

from __future__ import annotations

from bot.commands.registry import Answer, Request, command


def _no_alertmanager(request: Request) -> Answer:
    return Answer(f"Understood: {request.parse.command}. No alertmanager is connected yet.")


@command("silence", role="operator", usage="silence <alert|number> <duration>")
async def silence(request: Request) -> Answer:
    """Mutes an alert for a while, after you confirm with the code sent back: "silence HighCPU 2h"."""
    return _no_alertmanager(request)


@command("ack", role="operator", usage="ack <alert|number>")
async def ack(request: Request) -> Answer:
    """Acknowledges an alert so it stops repeating: "ack 2"."""
    return _no_alertmanager(request)


@command("confirm", usage="y <code>")
async def confirm(request: Request) -> Answer:
    """Confirms a silence or ack the bot asked about: reply "Y 4821" with the code it sent."""
    return Answer("Nothing is waiting for confirmation.")


@command("undo", role="operator", usage="undo")
async def undo(request: Request) -> Answer:
    """Reverses your last silence or ack within a few minutes."""
    return Answer("Nothing to undo.")


@command("subscribe", usage="subscribe")
async def subscribe(request: Request) -> Answer:
    """Start receiving alert texts on this number."""
    return Answer("Alert texts are not set up on this Operator yet.")


@command("unsubscribe", usage="unsubscribe")
async def unsubscribe(request: Request) -> Answer:
    """Stop receiving alert texts on this number."""
    return Answer("Alert texts are not set up on this Operator yet, so none will be sent.")
