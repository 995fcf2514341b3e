from __future__ import annotations

import asyncio
import io
import json
import logging

import pytest

from bot.core.conversation import Reply
from bot.observability import MaskNumbers, setup_logging
from bot.sms.replies import SmsReplies, context_note
from bot.state.memory.limits import InMemoryIdempotency, InMemoryRateLimiter, TokenBuckets
from bot.state.memory.pages import InMemoryPageStore
from bot.state.protocols import Verdict
from intents import Intent, Parse

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_allows_a_burst_warns_once_then_drops_until_refilled() -> None:
    clock = Clock()
    buckets = TokenBuckets(capacity=3, per_minute=6, clock=clock)  # a token every 10 s
    assert [buckets.take("+1") for _ in range(5)] == [Verdict.ALLOW] * 3 + [Verdict.WARN, Verdict.DROP]
    assert buckets.take("+2") is Verdict.ALLOW
    clock.now += 9
    assert buckets.take("+1") is Verdict.DROP
    clock.now += 1
    assert buckets.take("+1") is Verdict.ALLOW
    assert buckets.take("+1") is Verdict.WARN  # a new episode warns again


def test_buckets_are_bounded() -> None:
    buckets = TokenBuckets(capacity=1, per_minute=1, max_keys=10)
    for n in range(50):
        buckets.take(f"+{n}")
    assert len(buckets._buckets) == 10


async def test_the_global_limit_holds_for_everyone_together() -> None:
    limiter = InMemoryRateLimiter(TokenBuckets(100, 100), TokenBuckets(3, 1))
    verdicts = [await limiter.check(f"+{n}") for n in range(5)]
    assert verdicts == [Verdict.ALLOW] * 3 + [Verdict.DROP] * 2


async def test_idempotency_shares_the_first_reply_and_survives_an_abandoned_owner() -> None:
    store = InMemoryIdempotency()
    assert await store.claim("SM1") is None  # the owner
    waiters = [asyncio.ensure_future(store.claim("SM1")) for _ in range(3)]
    await asyncio.sleep(0)
    await store.finish("SM1", "<Response/>")
    assert await asyncio.gather(*waiters) == ["<Response/>"] * 3
    assert await store.claim_if_done("SM1") == "<Response/>"
    assert await store.claim("SM2") is None
    retry = asyncio.ensure_future(store.claim("SM2"))
    await asyncio.sleep(0)
    await store.abandon("SM2")
    assert await retry is None  # the repeat runs it after all


async def test_idempotency_forgets_after_its_ttl() -> None:
    clock = Clock()
    store = InMemoryIdempotency(ttl_s=60, clock=clock)
    await store.claim("SM1")
    await store.finish("SM1", "a")
    clock.now += 61
    assert await store.claim_if_done("SM1") is None


async def test_pages_expire_and_a_new_answer_replaces_them() -> None:
    clock = Clock()
    pages = InMemoryPageStore(ttl_s=100, clock=clock)
    await pages.keep("+1", ["two", "three"])
    assert await pages.next("+1") == ("two", 1)
    await pages.keep("+1", ["new"])
    assert await pages.next("+1") == ("new", 0)
    assert await pages.next("+1") is None
    await pages.keep("+1", ["later"])
    clock.now += 101
    assert await pages.next("+1") is None


def reply(text: str, slots: dict[str, object], used: tuple[str, ...], intent: Intent = Intent.METRICS) -> Reply:
    return Reply(text, Parse(intent, slots, "x"), used)  # type: ignore[arg-type]


def test_the_context_note_names_what_was_assumed() -> None:
    assert (
        context_note(
            reply("a", {"metric": "cpu", "service": "checkout", "range_s": 3600}, ("intent", "service", "range_s"))
        )
        == "[checkout, 1h]"
    )
    assert context_note(reply("a", {"service": "web", "level": "warn"}, ("level",), Intent.LOGS)) == "[warn]"
    assert context_note(reply("a", {"service": "web"}, ())) == ""


async def test_replies_fold_page_and_keep_the_rest() -> None:
    pages = InMemoryPageStore()
    replies = SmsReplies(pages, max_segments=1)
    first = await replies.finish("+1", reply("“quoted” " + "word " * 60, {}, ()))
    assert first.startswith('"quoted"') and first.isascii() and len(first) <= 160
    following = await pages.next("+1")
    assert following is not None and following[0].startswith("word")


def test_log_lines_never_carry_a_full_number(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging(json=True, level="INFO")
    try:
        logging.getLogger("operator.test").info("text from %s about +1 (555) 123-0009", "+15551230001")
        line = capsys.readouterr().err.strip().splitlines()[-1]
        record = json.loads(line)
        assert (
            "+15551230001" not in line and "+1555***0001" in record["message"] and "+1555***0009" in record["message"]
        )
    finally:
        logging.getLogger().handlers.clear()


def test_the_mask_filter_on_its_own() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(MaskNumbers())
    log = logging.getLogger("operator.mask")
    log.addHandler(handler)
    log.propagate = False
    log.warning("%s texted", "+447700900123")
    assert stream.getvalue() == "+4477***0123 texted\n"
