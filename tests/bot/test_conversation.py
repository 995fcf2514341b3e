"""The path every text takes (parse, context, handler, reply), as the SMS webhook will use it."""

from __future__ import annotations

import asyncio

import pytest

from bot.build import LOCAL_USER, build_conversation, role_of
from bot.commands import default_registry
from bot.commands.registry import Answer, CommandRegistry, CommandSpec, DuplicateCommand, Request
from bot.conversation import Conversation
from bot.settings import Settings, load_settings
from intents import Intent, Parser


@pytest.fixture
def settings() -> Settings:
    return load_settings(environ={}, env_file=None)


@pytest.fixture
def conversation(settings: Settings, parser: Parser) -> Conversation:
    return build_conversation(settings, parser)


def run(conversation: Conversation, user: str, *texts: str, role: str = "operator") -> list[str]:
    async def talk() -> list[str]:
        return [(await conversation.reply(user, text, role)).text for text in texts]  # type: ignore[arg-type]

    return asyncio.run(talk())


def test_follow_up_through_the_whole_path(conversation: Conversation) -> None:
    replies = run(conversation, "+1", "any payment errors?", "what about checkout?")
    assert "logs service=payment level=error" in replies[0]
    assert "logs service=checkout level=error" in replies[1]


def test_users_do_not_share_context(conversation: Conversation) -> None:
    run(conversation, "+1", "cpu on checkout")
    assert "Did you mean" in run(conversation, "+2", "what about auth?")[0]


def test_suggestion_then_yes(conversation: Conversation) -> None:
    first, second = run(conversation, "+1", "checkout?", "Y")
    assert first.startswith("Did you mean: ") and first.endswith("? Reply Y")
    suggested = first.removeprefix("Did you mean: ").removesuffix("? Reply Y")
    assert suggested in second


def test_viewers_cannot_write(conversation: Conversation) -> None:
    reply = run(conversation, "+1", "silence HighCPU 1h", role="viewer")[0]
    assert reply.startswith("Only operators can silence")
    assert "Only operators" not in run(conversation, "+1", "silence HighCPU 1h", role="operator")[0]


def test_reset_and_help(conversation: Conversation) -> None:
    assert run(conversation, "+1", "reset")[0] == "OK, starting fresh."
    help_text = run(conversation, "+1", "help")[0]
    assert "status" in help_text and len(help_text) <= 306  # two SMS segments
    assert run(conversation, "+1", "help silence")[0].startswith("silence <alert|number> <duration>")


def test_unknown_without_suggestion(conversation: Conversation) -> None:
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
    conversation = Conversation(parser, build_conversation(settings, parser).store, registry)

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
    configured = settings.model_copy(update={"users": {"+1": {"role": "viewer"}}})
    configured = Settings(**{**settings.model_dump(), "users": {"+1": {"name": "bob", "role": "viewer"}}})
    assert role_of(configured, "+1") == "viewer"
    assert role_of(configured, LOCAL_USER) is None
