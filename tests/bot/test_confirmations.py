"""A write the bot asked to confirm ("Silence HighCPU{…} for 1h? Reply Y 4416") is tied to its code: "no"
withdraws it and says so, any other command withdraws it silently, a bare "Y" asks for the code again,
and only the code the bot sent creates the silence. Through the conversation path (an alerting backend
scripted behind our own protocol); the signed webhook against a real Alertmanager is in
tests/bot/test_alerting_e2e.py."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from bot.core.commands import default_registry
from bot.core.conversation import CANCEL_WORDS, Conversation
from bot.core.runtime import build_store
from bot.settings import Settings, load_settings
from intents import Parser
from monitors.base import Alert, AlertList, AlertQuery
from monitors.registry import MonitorRegistry
from monitors.resilience import Guarded
from tests.fakes import ScriptedWriter, in_memory_services

USER = "+15551230001"
QUESTION = "Silence HighCPU{service=checkout} for 1h? Reply Y "


class Phone:
    """One operator texting a bot whose alerting backend has HighCPU firing and records silences."""

    def __init__(self, parser: Parser) -> None:
        settings: Settings = load_settings(environ={}, env_file=None)
        alert = Alert("HighCPU", {"alertname": "HighCPU", "service": "checkout", "severity": "critical"},
                      "firing", fingerprint="fp-highcpu")  # fmt: skip
        self.backend = ScriptedWriter("alertmanager", answer=AlertList(AlertQuery("all"), (alert,)))
        monitors = MonitorRegistry()
        monitors.register(Guarded(self.backend), "alertmanager")
        registry = default_registry()
        self.services = in_memory_services(settings, monitors=monitors, commands=registry)
        self.conversation = Conversation(parser, build_store(settings), registry, self.services)

    def __call__(self, *texts: str) -> list[str]:
        async def talk() -> list[str]:
            return [(await self.conversation.reply(USER, text, "operator")).text for text in texts]

        return asyncio.run(talk())

    def ask(self) -> str:
        """Text the silence; the code the bot sent back."""
        [question] = self("silence HighCPU 1h")
        assert question.startswith(QUESTION)
        return question.removeprefix(QUESTION)


@pytest.fixture
def phone(parser: Parser) -> Phone:
    return Phone(parser)


@pytest.mark.parametrize("no", ["no", "n", "cancel", "nope", "No.", "NOPE!", "cancel it", "never mind"])
def test_no_withdraws_the_pending_silence_and_says_so(phone: Phone, no: str) -> None:
    code = phone.ask()
    [answer] = phone(no)
    assert answer.startswith("OK, HighCPU{service=checkout} not silenced.")  # "never mind" is also a reset
    assert phone("yes", f"y {code}") == ["Nothing is waiting for confirmation."] * 2
    assert phone.backend.silences == []


def test_reset_withdraws_it_and_starts_fresh(phone: Phone) -> None:
    code = phone.ask()
    assert phone("reset") == ["OK, HighCPU{service=checkout} not silenced. Starting fresh."]
    assert phone(f"Y {code}") == ["Nothing is waiting for confirmation."]
    assert phone.backend.silences == []


@pytest.mark.parametrize("other", ["status", "help", "alerts", "cpu on checkout"])
def test_another_command_drops_it_without_a_word(phone: Phone, other: str) -> None:
    code = phone.ask()
    [answer] = phone(other)
    assert "silenced" not in answer and "Reply Y" not in answer  # answered as usual
    assert phone(f"y {code}") == ["Nothing is waiting for confirmation."]
    assert phone.backend.silences == []


@pytest.mark.parametrize("bare", ["y", "Y", "yes", "confirm", "yes please"])
def test_a_bare_yes_asks_for_the_code_and_creates_nothing(phone: Phone, bare: str) -> None:
    code = phone.ask()
    expected = f"Reply Y {code} to confirm (the code makes sure it's the right alert)."
    assert phone(bare, bare) == [expected, expected]  # asked again, still the question asked last
    assert phone.backend.silences == []
    [done] = phone(f"Y {code}")
    assert done.startswith("Silenced HighCPU{service=checkout} for 1h (silence silence-")
    assert phone.backend.silences == [("HighCPU", 3600)]


def test_a_wrong_code_keeps_the_question_and_the_bare_code_still_works(phone: Phone) -> None:
    code = phone.ask()
    wrong = "1111" if code != "1111" else "2222"
    assert phone(f"y {wrong}") == [f"That code does not match. Reply Y {code} to confirm."]
    [done] = phone(code)  # the code alone answers the question still asked
    assert done.startswith("Silenced HighCPU{service=checkout}")
    assert phone(f"y {code}", "y") == ["Nothing is waiting for confirmation."] * 2  # a code works once
    assert phone.backend.silences == [("HighCPU", 3600)]


def test_a_bare_yes_runs_a_suggestion_asked_after_the_silence(phone: Phone) -> None:
    """The question asked last wins: a "Did you mean …? Reply Y" after the silence question."""
    code = phone.ask()
    [suggestion] = phone("checkout?")
    assert suggestion.startswith("Did you mean: ") and suggestion.endswith("? Reply Y")
    suggested = suggestion.removeprefix("Did you mean: ").removesuffix("? Reply Y")
    assert phone("Y") == phone(suggested)  # the suggestion ran
    assert phone(f"y {code}") == ["Nothing is waiting for confirmation."]
    assert phone.backend.silences == []


def test_without_a_pending_write_no_means_what_it_says(phone: Phone) -> None:
    assert phone("no")[0].startswith("Sorry, I didn't get that")
    assert phone("yes") == ["Nothing is waiting for confirmation."]


def test_a_lost_context_never_lets_a_bare_yes_through(phone: Phone) -> None:
    """Conversation memory expired (or its store was down): the pending write still needs its code."""
    code = phone.ask()
    forget: Callable[[], object] = lambda: asyncio.run(phone.conversation.store.clear(USER))  # noqa: E731
    forget()
    assert phone("yes") == [f"Reply Y {code} to confirm (the code makes sure it's the right alert)."]
    assert phone.backend.silences == []


def test_the_cancel_words_are_documented_lowercase_phrases() -> None:
    assert {"no", "n", "cancel", "nope", "reset"} <= CANCEL_WORDS
    assert all(word == word.lower().strip() for word in CANCEL_WORDS)
