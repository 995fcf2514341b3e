"""The path every text takes (parse, context, handler, reply), as the SMS webhook will use it."""

from __future__ import annotations

import asyncio

import pytest

from bot.core.commands import default_registry
from bot.core.commands.registry import Answer, CommandRegistry, CommandSpec, DuplicateCommand, Request
from bot.core.conversation import Conversation, Reply
from bot.core.roles import LOCAL_USER, role_of
from bot.core.runtime import build_store, open_runtime
from bot.settings import Settings, load_settings
from bot.state.protocols import CONTEXT_UNAVAILABLE, StoreUnavailable
from intents import Context, Intent, Parser
from tests.fakes import in_memory_services


@pytest.fixture
def settings() -> Settings:
    return load_settings(environ={}, env_file=None)


class Talker:
    """Texts one conversation path, each call in its own event loop with its own runtime."""

    def __init__(self, settings: Settings, parser: Parser) -> None:
        self.settings = settings
        self.parser = parser
        self.store = build_store(settings)

    def __call__(self, user: str, *texts: str, role: str = "operator") -> list[Reply]:
        async def talk() -> list[Reply]:
            async with open_runtime(self.settings, self.parser) as runtime:
                conversation = Conversation(self.parser, self.store, runtime.conversation.commands, runtime.services)
                return [await conversation.reply(user, text, role) for text in texts]  # type: ignore[arg-type]

        return asyncio.run(talk())


@pytest.fixture
def conversation(settings: Settings, parser: Parser) -> Talker:
    return Talker(settings, parser)


def run(talker: Talker, user: str, *texts: str, role: str = "operator") -> list[str]:
    return [reply.text for reply in talker(user, *texts, role=role)]


def commands(talker: Talker, user: str, *texts: str) -> list[str]:
    return [reply.parse.command for reply in talker(user, *texts)]


def test_follow_up_through_the_whole_path(conversation: Talker) -> None:
    assert commands(conversation, "+1", "any payment errors?", "what about checkout?") == [
        "logs service=payment level=error",
        "logs service=checkout level=error",
    ]
    assert run(conversation, "+1", "and the last 2 hours")[0].startswith("No logs backend is configured")


def test_users_do_not_share_context(conversation: Talker) -> None:
    run(conversation, "+1", "cpu on checkout")
    assert "Did you mean" in run(conversation, "+2", "what about auth?")[0]


def test_suggestion_then_yes(conversation: Talker) -> None:
    first, second = conversation("+1", "checkout?", "Y")
    assert first.text.startswith("Did you mean: ") and first.text.endswith("? Reply Y")
    suggested = first.text.removeprefix("Did you mean: ").removesuffix("? Reply Y")
    assert second.parse.command == suggested
    assert second.text.startswith("this host cpu:")  # the suggestion ran against the host monitor


def test_viewers_cannot_write(conversation: Talker) -> None:
    reply = run(conversation, "+1", "silence HighCPU 1h", role="viewer")[0]
    assert reply.startswith("Only operators can silence")
    assert "Only operators" not in run(conversation, "+1", "silence HighCPU 1h", role="operator")[0]


def test_reset_and_help(conversation: Talker) -> None:
    assert run(conversation, "+1", "reset")[0] == "OK, starting fresh."
    help_text = run(conversation, "+1", "help")[0]
    assert "status" in help_text and len(help_text) <= 306  # two SMS segments
    assert run(conversation, "+1", "help silence")[0].startswith("silence <number|alert> <duration>")


def test_unknown_without_suggestion(conversation: Talker) -> None:
    assert run(conversation, "+1", "restart auth")[0].startswith("Sorry, I didn't get that")


def test_one_users_texts_are_handled_in_order(settings: Settings, parser: Parser) -> None:
    seen: list[str] = []

    async def slow_status(request: Request) -> Answer:
        seen.append(f"start {request.parse.command}")
        await asyncio.sleep(0.01)
        seen.append(f"end {request.parse.command}")
        return Answer("ok")

    registry = CommandRegistry()
    for spec in default_registry():
        handler = slow_status if spec.intent in (Intent.STATUS, Intent.HELP) else spec.handler
        registry.register(CommandSpec(spec.intent, handler, spec.role, spec.usage))
    conversation = Conversation(
        parser, build_store(settings), registry, in_memory_services(settings, commands=registry)
    )

    async def both() -> None:
        await asyncio.gather(conversation.reply("+1", "status"), conversation.reply("+1", "help"))

    asyncio.run(both())
    assert seen == ["start status", "end status", "start help", "end help"]


def test_registry_refuses_duplicates_and_covers_every_intent() -> None:
    registry = default_registry()
    assert all(intent in registry for intent in Intent)
    spec = registry.get(Intent.STATUS)
    assert spec is not None and spec.help  # the docstring is the help text
    with pytest.raises(DuplicateCommand):
        registry.register(spec)


def test_roles_from_the_allowlist(settings: Settings) -> None:
    assert role_of(settings, LOCAL_USER) == "operator"
    assert role_of(settings, "+15559999999") is None
    configured = Settings(**{**settings.model_dump(), "users": {"+1 555 777 0001": {"name": "bob", "role": "viewer"}}})
    assert role_of(configured, "+15557770001") == "viewer"
    assert role_of(configured, LOCAL_USER) is None


class DownStore:
    """A context store whose backend is gone (Redis unreachable): every call raises."""

    async def get(self, user: str) -> Context:
        raise StoreUnavailable("context store unreachable")

    async def put(self, user: str, context: Context) -> None:
        raise StoreUnavailable("context store unreachable")

    async def clear(self, user: str) -> None:
        raise StoreUnavailable("context store unreachable")


@pytest.mark.parametrize(
    ("text", "noted"),
    [
        ("what about memory?", True),  # a follow-up answered without what it follows: said plainly
        ("and disk", True),
        ("more", True),
        ("ack it", True),
        ("help", False),  # stands alone: answered as usual, no note
        ("cpu on checkout", False),
    ],
)
def test_answers_without_memory_when_the_context_store_is_down(
    settings: Settings, parser: Parser, text: str, noted: bool
) -> None:
    async def talk() -> Reply:
        async with open_runtime(settings, parser) as runtime:
            conversation = Conversation(parser, DownStore(), runtime.conversation.commands, runtime.services)
            return await conversation.reply("+1", text, "operator")

    reply = asyncio.run(talk())
    assert reply.text.endswith(CONTEXT_UNAVAILABLE) is noted
    assert reply.text.strip() != CONTEXT_UNAVAILABLE  # an answer came first
