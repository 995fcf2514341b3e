"""The one path every text takes: parse with the user's context, run the command, keep the context.

The SMS webhook, `operator chat` and the tests all call `Conversation.reply`, so what works in
the terminal works by SMS. One user's texts are handled one at a time, in order; different users
never wait for each other.

A write the bot asked to confirm ("Silence HighCPU{…} for 1h? Reply Y 4416") stays pending only while
the person answers that question: "no" (see `CANCEL_WORDS`) withdraws it and says so, any other command
withdraws it silently, and only its code confirms it (`bot.core.commands.alerting.confirm`).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import weakref
from dataclasses import dataclass

from bot.core.commands.registry import Answer, CommandRegistry, CommandSpec, Request, Role
from bot.core.services import Services
from bot.state.protocols import CONTEXT_UNAVAILABLE, STATE_UNAVAILABLE, ContextStore, StoreUnavailable
from intents import Context, Intent, Parse, Parser, remember

SOMETHING_WENT_WRONG = "Sorry, something went wrong on my side. Try again."
"""The answer when a text could not be handled at all (the outermost frame caught it and logged its kind)."""

CANCEL_WORDS = frozenset({
    "no", "n", "nope", "nah", "no thanks", "no thank you", "cancel", "cancel it", "cancel that", "abort",
    "never mind", "nevermind", "dont", "don't", "do not", "reset",
})  # fmt: skip
"""Texts that turn down a pending write (case, punctuation and its code aside: "No.", "cancel 4416").

The parser reads them as `unknown` ("cancel it" as `undo`, "reset" as `reset`): only the bot knows that
a write is waiting, so the bot decides here, and only while one is; otherwise they mean what they say."""
_PUNCTUATION = re.compile(r"[^\w\s']+")


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
        self._turns: weakref.WeakValueDictionary[str, _Turns] = weakref.WeakValueDictionary()

    def _turns_of(self, user: str) -> _Turns:
        turns = self._turns.get(user)
        if turns is None:
            turns = _Turns()
            self._turns[user] = turns
        return turns

    def read_mark(self, user: str) -> ReadMark:
        """Taken just before a context is read outside `reply` (the webhook's gate reads it with the rate
        limits): `reply` trusts that read only if this user's conversation has not moved on since."""
        turns = self._turns_of(user)
        return ReadMark(turns, turns.written)

    async def reply(
        self, user: str, text: str, role: Role = "viewer", known: tuple[Context, ReadMark] | None = None
    ) -> Reply:
        """Answer one text from `user`, reading and updating their context. `known` is the context already
        read (one store round trip fewer), used only when no other text of this user was answered or is
        being answered in this process since it was read; otherwise it is read again."""
        turns = self._turns_of(user)
        fresh = known is not None and known[1].still(turns) and not turns.lock.locked()
        async with turns.lock:
            degraded = False
            try:
                context = known[0] if fresh and known is not None else await self.store.get(user)
            except StoreUnavailable:
                context, degraded = Context(), True  # answer without memory rather than not at all
            loaded = context
            trace = self.parser.explain(text, context, detail=False)
            parse = trace.parse
            pending = context.pending_code
            context = remember(context, parse)
            request = Request(parse, user, role, context, self.services, text)
            try:
                answer = await self._withdrawn(request, pending) or await self._run(request)
            except StoreUnavailable:  # alert state, pending silences: say so, don't guess
                answer, degraded = Answer(STATE_UNAVAILABLE), True
            kept = answer.context or context
            try:
                if kept != loaded:  # "help", "status", "more": nothing new to remember, no write to make
                    turns.written += 1
                    await self.store.put(user, kept)
            except StoreUnavailable:
                degraded = True
        reply = answer.text
        if degraded and (trace.follow_up or _needs_memory(parse)):
            reply = f"{reply}\n{CONTEXT_UNAVAILABLE}"
        return Reply(reply, parse, trace.context_used, answer.media)

    async def _run(self, request: Request) -> Answer:
        spec: CommandSpec | None = self.commands.get(request.parse.intent)
        if spec is None:
            return Answer("Sorry, I can't do that yet.")
        if spec.role == "operator" and request.role != "operator":
            return Answer(f"Only operators can {request.parse.intent.value}. Ask an operator on your team.")
        return await spec.handler(request)

    async def _withdrawn(self, request: Request, pending: str | None) -> Answer | None:
        """With a write waiting for its code, anything but a confirmation withdraws it: the answer to "no",
        or None to run the text as usual (the write is dropped without a word)."""
        if pending is None or request.parse.intent is Intent.CONFIRM:
            return None
        plain = _PUNCTUATION.sub(" ", request.text.lower().replace("’", "'"))
        words = " ".join(w for w in plain.split() if w != pending)
        if words not in CANCEL_WORDS:
            with contextlib.suppress(StoreUnavailable):  # then it lapses; only its code could still confirm it
                await self.services.actions.withdraw(request.user)
            return None
        proposal = await self.services.actions.withdraw(request.user)
        said = f"OK, {proposal.description} not silenced." if proposal is not None else "OK, nothing was silenced."
        return Answer(f"{said} Starting fresh." if request.parse.intent is Intent.RESET else said)


class _Turns:
    """One user's texts in this process: answered one at a time (`lock`), and how many changed the context."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.written = 0


@dataclass(frozen=True)
class ReadMark:
    """Where a user's conversation stood when a context was read outside `Conversation.reply`."""

    turns: _Turns
    written: int

    def still(self, turns: _Turns) -> bool:
        return turns is self.turns and turns.written == self.written


_STATEFUL = frozenset({Intent.UNKNOWN, Intent.MORE, Intent.CONFIRM, Intent.UNDO})


def _needs_memory(parse: Parse) -> bool:
    """Whether this text leaned on what the conversation remembers (a follow-up, "more", a list number)."""
    alert = parse.slots.get("alert")
    return parse.intent in _STATEFUL or (isinstance(alert, str) and alert.isdigit())
