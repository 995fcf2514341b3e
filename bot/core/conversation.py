"""The one path every text takes: parse with the user's context, run the command, keep the context.

The SMS webhook, `operator chat` and the tests all call `Conversation.reply`, so what works in
the terminal works by SMS. One user's texts are handled one at a time, in order; different users
never wait for each other.
"""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass

from bot.core.commands.registry import Answer, CommandRegistry, Request, Role
from bot.core.services import Services
from bot.state.protocols import CONTEXT_UNAVAILABLE, STATE_UNAVAILABLE, ContextStore, StoreUnavailable
from intents import Context, Intent, Parse, Parser, remember

SOMETHING_WENT_WRONG = "Sorry, something went wrong on my side. Try again."
"""The answer when a text could not be handled at all (the outermost frame caught it and logged its kind)."""


@dataclass(frozen=True)
class Reply:
    text: str
    parse: Parse
    context_used: tuple[str, ...] = ()
    """Slots (and "intent") completed from the user's context, so the reply can say what it assumed."""
    media: tuple[str, ...] = ()
    """Pictures (public URLs) to send with the first page of the text."""


class Conversation:
    def __init__(self, parser: Parser, store: ContextStore, commands: CommandRegistry, services: Services) -> None:
        self.parser = parser
        self.store = store
        self.commands = commands
        self.services = services
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    def _lock(self, user: str) -> asyncio.Lock:
        lock = self._locks.get(user)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[user] = lock
        return lock

    async def reply(self, user: str, text: str, role: Role = "viewer") -> Reply:
        """Answer one text from `user`, reading and updating their context."""
        async with self._lock(user):
            degraded = False
            try:
                context = await self.store.get(user)
            except StoreUnavailable:
                context, degraded = Context(), True  # answer without memory rather than not at all
            trace = self.parser.explain(text, context, detail=False)
            parse = trace.parse
            context = remember(context, parse)
            spec = self.commands.get(parse.intent)
            if spec is None:
                answer = Answer("Sorry, I can't do that yet.")
            elif spec.role == "operator" and role != "operator":
                answer = Answer(f"Only operators can {parse.intent.value}. Ask an operator on your team.")
            else:
                try:
                    answer = await spec.handler(Request(parse, user, role, context, self.services, text))
                except StoreUnavailable:  # alert state, pending silences: say so, don't guess
                    answer, degraded = Answer(STATE_UNAVAILABLE), True
            try:
                await self.store.put(user, answer.context or context)
            except StoreUnavailable:
                degraded = True
        reply = answer.text
        if degraded and (trace.follow_up or _needs_memory(parse)):
            reply = f"{reply}\n{CONTEXT_UNAVAILABLE}"
        return Reply(reply, parse, trace.context_used, answer.media)


_STATEFUL = frozenset({Intent.UNKNOWN, Intent.MORE, Intent.CONFIRM, Intent.UNDO})


def _needs_memory(parse: Parse) -> bool:
    """Whether this text leaned on what the conversation remembers (a follow-up, "more", a list number)."""
    alert = parse.slots.get("alert")
    return parse.intent in _STATEFUL or (isinstance(alert, str) and alert.isdigit())
