"""Who may do what: the allowlist's roles (viewers read, operators also silence, ack and take the pager)."""

from __future__ import annotations

from bot.core.commands.registry import Role
from bot.settings import Settings

LOCAL_USER = "+15550000000"
"""The terminal's own number when the config has no users (embedded defaults)."""


def role_of(settings: Settings, user: str) -> Role | None:
    """The user's role, or None for a number not on the allowlist.

    With no users configured (embedded defaults) the local terminal user is an operator.
    """
    if not settings.users:
        return "operator" if user == LOCAL_USER else None
    entry = settings.users.get(user)
    return entry.role if entry is not None else None
