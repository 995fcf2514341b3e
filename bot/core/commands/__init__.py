"""The command handlers, one small module per family of commands."""

from __future__ import annotations

from bot.core.commands import alerting, chat, help, monitoring, oncall
from bot.core.commands.registry import Answer, CommandRegistry, CommandSpec, Request, command

HANDLER_MODULES = (help, monitoring, alerting, chat, oncall)


def default_registry() -> CommandRegistry:
    """Every built-in command; fails at start-up if one is missing or claimed twice."""
    registry = CommandRegistry().collect(HANDLER_MODULES)
    from intents.models import Intent

    missing = [i.value for i in Intent if i not in registry]
    if missing:
        raise RuntimeError(f"no handler for: {', '.join(missing)}")
    return registry


__all__ = ["Answer", "CommandRegistry", "CommandSpec", "Request", "command", "default_registry"]
