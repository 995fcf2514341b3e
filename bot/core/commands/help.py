"""help: what the bot understands, kept short enough for one or two SMS."""

from __future__ import annotations

from bot.core.commands.registry import Answer, Request, command
from intents.models import Intent

OVERVIEW = (
    "Ask in your own words or use commands: status, health, metrics, logs, db, gateway, alerts, "
    "silence, ack, graph, more, undo, reset, subscribe. "
    'E.g. "any payment errors?", "cpu on checkout 1h", "ack 2". Text HELP <command> for one.'
)


@command("help", usage="help [command]")
async def help_(request: Request) -> Answer:
    """Lists the commands; "help logs" explains one."""
    topic = request.parse.slots.get("topic")
    registry = request.services.commands
    spec = registry.get(Intent(str(topic))) if topic else None
    if spec is None:
        return Answer(OVERVIEW)
    return Answer(f"{spec.usage} - {spec.help}")
