"""Assemble the bot's parts from settings; called by the CLI and (later) the app factory, never at import."""

from __future__ import annotations

from bot.core.commands.registry import Role
from bot.settings import Settings
from bot.state.memory.context import InMemoryContextStore
from intents import Parser

LOCAL_USER = "+15550000000"
"""The terminal's own number when the config has no users (embedded defaults)."""


def build_parser(settings: Settings) -> Parser:
    return Parser(settings.catalog())


def build_store(settings: Settings) -> InMemoryContextStore:
    return InMemoryContextStore(ttl_s=settings.context_ttl_s, max_users=settings.context_max_users)


def role_of(settings: Settings, user: str) -> Role | None:
    """The user's role, or None for a number not on the allowlist.

    With no users configured (embedded defaults) the local terminal user is an operator.
    """
    if not settings.users:
        return "operator" if user == LOCAL_USER else None
    entry = settings.users.get(user)
    return entry.role if entry is not None else None
