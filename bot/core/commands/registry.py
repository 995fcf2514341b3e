"""Command handlers: small async functions, one per intent, registered by name.

`@command("silence", role="operator")` only marks a function; `CommandRegistry.collect` gathers the
marked functions of the given modules, so nothing is registered at import and two handlers for
one intent are an error at start-up, not a silent override.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Literal

from bot.core.services import Services
from intents.models import Context, Intent, Parse

Role = Literal["viewer", "operator"]


@dataclass(frozen=True)
class Request:
    """What a handler gets: the parsed command, who sent it, and the bot's services."""

    parse: Parse
    user: str
    role: Role
    context: Context
    """The user's context after this parse (handlers may return a changed one)."""
    services: Services
    """What handlers may use (settings, monitors, stores …), built once per process."""
    text: str = ""
    """The text as the user sent it (a silence keeps it as its comment)."""


@dataclass(frozen=True)
class Answer:
    """A handler's reply text, and the context to keep if the handler changed it."""

    text: str
    context: Context | None = None
    media: tuple[str, ...] = ()
    """Public URLs of pictures to send with the text (MMS), e.g. a chart."""


Handler = Callable[[Request], Awaitable[Answer]]


@dataclass(frozen=True)
class CommandSpec:
    intent: Intent
    handler: Handler
    role: Role
    usage: str

    @property
    def help(self) -> str:
        """The handler's docstring is its help text."""
        return inspect.cleandoc(self.handler.__doc__ or "").strip()


_MARK = "__operator_command__"


def command(name: str, role: Role = "viewer", usage: str = "") -> Callable[[Handler], Handler]:
    """Mark an async function as the handler of intent `name` (no registration happens here)."""
    intent = Intent(name)

    def mark(handler: Handler) -> Handler:
        setattr(handler, _MARK, (intent, role, usage or name))
        return handler

    return mark


class DuplicateCommand(ValueError):
    """Two handlers claim the same intent."""


class CommandRegistry:
    def __init__(self) -> None:
        self._specs: dict[Intent, CommandSpec] = {}

    def register(self, spec: CommandSpec) -> None:
        if spec.intent in self._specs:
            raise DuplicateCommand(f"command {spec.intent.value!r} is registered twice")
        self._specs[spec.intent] = spec

    def collect(self, modules: Iterable[ModuleType]) -> CommandRegistry:
        """Register every marked handler of the modules; returns self for chaining."""
        for module in modules:
            for _, member in inspect.getmembers(module, inspect.iscoroutinefunction):
                mark = getattr(member, _MARK, None)
                if mark is not None and member.__module__ == module.__name__:
                    intent, role, usage = mark
                    self.register(CommandSpec(intent, member, role, usage))
        return self

    def get(self, intent: Intent) -> CommandSpec | None:
        return self._specs.get(intent)

    def __iter__(self) -> Iterator[CommandSpec]:
        return iter(self._specs.values())

    def __contains__(self, intent: object) -> bool:
        return intent in self._specs
