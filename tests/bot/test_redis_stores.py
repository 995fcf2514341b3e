"""The shared stores in Redis, against a real redis-server: the same behaviour as the in-memory stores (the
behaviour tests run against both), atomic across instances (two client pools stand in for two processes),
bounded and expiring, and failing fast and safely when Redis is down, then working again when it is back.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit
from uuid import uuid4

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from bot.alerting.model import AlertEvent, Changes, Done, Notification, Severity
from bot.settings import ConfigError, Settings
from bot.state.memory.actions import Actions
from bot.state.memory.alerts import AlertBook
from bot.state.memory.context import InMemoryContextStore
from bot.state.memory.delivery import Deduplicator, LocalBudget, LocalDedup, SendBudget
from bot.state.memory.lease import FileLease
from bot.state.memory.limits import InMemoryIdempotency, InMemoryRateLimiter, LocalAdmission, TokenBuckets
from bot.state.memory.pages import InMemoryPageStore
from bot.state.protocols import (
    ActionStore,
    Admission,
    Admitted,
    AlertStore,
    BudgetStore,
    ContextStore,
    DedupStore,
    Idempotency,
    Lease,
    PageStore,
    RateLimiter,
    ReplyPending,
    StoreUnavailable,
    Verdict,
)
from bot.state.redis.actions import RedisActions
from bot.state.redis.alerts import RedisAlertBook, RedisBudget, RedisDedup
from bot.state.redis.client import redis_client
from bot.state.redis.codecs import context_from_json, context_to_json
from bot.state.redis.conversation import RedisContextStore, RedisPageStore
from bot.state.redis.lease import RedisLease
from bot.state.redis.limits import RedisAdmission, RedisIdempotency, RedisRateLimiter
from bot.state.redis.stores import RedisStores, open_redis_stores
from intents.models import Context, Intent
from tests.bot.servers_redis import PASSWORD, RedisServer, redis_server
from tests.examples import examples
from tests.servers import free_port

pytestmark = [pytest.mark.anyio, pytest.mark.servers]

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


@pytest.fixture
def prefix() -> str:
    """A fresh namespace per test: tests share one server without seeing each other's keys."""
    return f"t{uuid4().hex[:10]}:"


@pytest.fixture
async def client(redis: RedisServer) -> AsyncIterator[Redis]:
    opened = redis_client(redis.url)
    try:
        yield opened
    finally:
        await opened.aclose()


@pytest.fixture
async def other(redis: RedisServer) -> AsyncIterator[Redis]:
    """A second, separate pool: another instance of the bot."""
    opened = redis_client(redis.url)
    try:
        yield opened
    finally:
        await opened.aclose()


class Make:
    """Each store, in memory or in Redis, built alike, so one behaviour test runs against both."""

    def __init__(self, kind: str, client: Redis, prefix: str, tmp: Path) -> None:
        self.kind, self.client, self.prefix, self.tmp = kind, client, prefix, tmp

    @property
    def redis(self) -> bool:
        return self.kind == "redis"

    def contexts(self, ttl_s: float = 900, max_users: int = 10_000) -> ContextStore:
        if self.redis:
            return RedisContextStore(self.client, ttl_s, max_users, prefix=self.prefix)
        return InMemoryContextStore(ttl_s, max_users)

    def pages(self, ttl_s: float = 900) -> PageStore:
        return RedisPageStore(self.client, ttl_s, prefix=self.prefix) if self.redis else InMemoryPageStore(ttl_s)

    def limiter(self, capacity: float, per_minute: float, overall: tuple[float, float], clock: Clock) -> RateLimiter:
        if self.redis:
            return RedisRateLimiter(self.client, capacity, per_minute, global_capacity=overall[0],
                                    global_per_minute=overall[1], prefix=self.prefix, clock=clock)  # fmt: skip
        return InMemoryRateLimiter(TokenBuckets(capacity, per_minute, clock=clock),
                                   TokenBuckets(overall[0], overall[1], clock=clock))  # fmt: skip

    def idempotency(self, ttl_s: float = 86_400) -> Idempotency:
        return RedisIdempotency(self.client, ttl_s, prefix=self.prefix) if self.redis else InMemoryIdempotency(ttl_s)

    def admission(
        self, capacity: float, clock: Clock, idempotency: Idempotency, pages: PageStore | None = None
    ) -> Admission:
        """The gate over a limiter of `capacity` texts at once (a token every 10 s), `idempotency` and `pages`."""
        limiter = self.limiter(capacity, 6, (1000, 1000), clock)
        pages = pages if pages is not None else self.pages()
        contexts = self.contexts()
        if self.redis:
            assert isinstance(limiter, RedisRateLimiter) and isinstance(idempotency, RedisIdempotency)
            assert isinstance(pages, RedisPageStore) and isinstance(contexts, RedisContextStore)
            return RedisAdmission(self.client, limiter, idempotency, pages, contexts)
        return LocalAdmission(limiter, idempotency, pages, contexts)

    def dedup(self, ttl_s: float) -> DedupStore:
        return RedisDedup(self.client, ttl_s, prefix=self.prefix) if self.redis else LocalDedup(Deduplicator(ttl_s))

    def budget(self, max_texts: int, window_s: float, clock: Clock) -> BudgetStore:
        if self.redis:
            return RedisBudget(self.client, max_texts, window_s, prefix=self.prefix, clock=clock)
        return LocalBudget(SendBudget(max_texts, window_s, clock=clock))

    def book(self, clock: Clock, tombstone_s: float = 3600, max_alerts: int = 50_000) -> AlertStore:
        if self.redis:
            return RedisAlertBook(self.client, tombstone_s, max_alerts, prefix=self.prefix, clock=clock)
        return AlertBook(tombstone_s, max_alerts, clock=clock)

    def actions(self, clock: Clock, proposal_ttl_s: float = 300, undo_window_s: float = 300) -> ActionStore:
        if self.redis:
            return RedisActions(self.client, proposal_ttl_s, undo_window_s, prefix=self.prefix, clock=clock)
        return Actions(proposal_ttl_s, undo_window_s, clock=clock)

    def lease(self, name: str = "rules") -> Lease:
        return RedisLease(self.client, name, 30, prefix=self.prefix) if self.redis else FileLease(self.tmp / name)


@pytest.fixture(params=["memory", "redis"])
def make(request: pytest.FixtureRequest, client: Redis, prefix: str, tmp_path: Path) -> Make:
    return Make(request.param, client, prefix, tmp_path)


def event(fp: str, status: str = "firing", starts: int | None = 0, ends: int | None = None, name: str = "HighCPU",
          severity: Severity = Severity.WARNING) -> AlertEvent:  # fmt: skip
    """An alert whose start and end are minutes after T0 (None for absent)."""
    return AlertEvent(
        fingerprint=fp, name=name, labels={"alertname": name, "instance": f"{fp}:9100"}, status=status,  # type: ignore[arg-type]
        severity=severity, summary=f"{name} on {fp}",
        starts_at=None if starts is None else T0 + timedelta(minutes=starts),
        ends_at=None if ends is None else T0 + timedelta(minutes=ends),
    )  # fmt: skip


def note(*alerts: AlertEvent) -> Notification:
    status = "firing" if any(a.status == "firing" for a in alerts) else "resolved"
    return Notification("alertmanager", "group", status, alerts)  # type: ignore[arg-type]


# --- the same behaviour in memory and in Redis -----------------------------------------------------------


async def test_context_round_trips_and_an_empty_one_clears(make: Make) -> None:
    store = make.contexts()
    context = Context(Intent.LOGS, {"service": "payment", "range_s": 3600, "terms": ("db", "timeout")},
                      suggestion="logs service=payment", pending_code="4821", alerts=("fp1", "fp2"))  # fmt: skip
    assert await store.get("+1") == Context()
    await store.put("+1", context)
    got = await store.get("+1")
    assert got == context and isinstance(got.slots["terms"], tuple) and got.intent is Intent.LOGS
    await store.put("+1", Context())
    assert await store.get("+1") == Context()
    await store.put("+1", context)
    await store.clear("+1")
    assert await store.get("+1") == Context()


async def test_context_expires_after_its_ttl(make: Make) -> None:
    store = make.contexts(ttl_s=0.3)
    await store.put("+1", Context(Intent.STATUS))
    assert await store.get("+1") == Context(Intent.STATUS)
    await asyncio.sleep(0.5)
    assert await store.get("+1") == Context()


async def test_contexts_are_bounded_dropping_the_oldest_write(make: Make) -> None:
    store = make.contexts(max_users=3)
    for user in ["+1", "+2", "+3"]:
        await store.put(user, Context(Intent.STATUS))
    await store.get("+1")  # reading is not writing: +1 stays the oldest
    await store.put("+2", Context(Intent.DB))
    await store.put("+4", Context(Intent.STATUS))
    await store.put("+5", Context(Intent.STATUS))
    kept = {user: await store.get(user) for user in ["+1", "+2", "+3", "+4", "+5"]}
    assert [user for user, context in kept.items() if not context.empty] == ["+2", "+4", "+5"]
    assert kept["+2"] == Context(Intent.DB)


async def test_pages_come_in_order_then_none_and_a_new_answer_replaces_them(make: Make) -> None:
    pages = make.pages()
    assert await pages.next("+1") is None
    await pages.keep("+1", ["one", "two", "three"])
    assert await pages.next("+1") == ("one", 2)
    await pages.keep("+1", ["new", "newer"])
    assert [await pages.next("+1") for _ in range(3)] == [("new", 1), ("newer", 0), None]
    await pages.keep("+1", ["x"])
    await pages.keep("+1", [])
    assert await pages.next("+1") is None


async def test_pages_expire(make: Make) -> None:
    pages = make.pages(ttl_s=0.3)
    await pages.keep("+1", ["a", "b"])
    await asyncio.sleep(0.5)
    assert await pages.next("+1") is None


async def test_the_bucket_allows_a_burst_warns_once_then_drops_until_refilled(make: Make) -> None:
    clock = Clock()
    limiter = make.limiter(3, 6, (1000, 1000), clock)  # a token every 10 s
    assert [await limiter.check("+1") for _ in range(5)] == [Verdict.ALLOW] * 3 + [Verdict.WARN, Verdict.DROP]
    assert await limiter.check("+2") is Verdict.ALLOW
    clock.now += 9
    assert await limiter.check("+1") is Verdict.DROP
    clock.now += 1
    assert await limiter.check("+1") is Verdict.ALLOW
    assert await limiter.check("+1") is Verdict.WARN  # a new episode warns again


async def test_the_global_limit_holds_for_everyone_together(make: Make) -> None:
    limiter = make.limiter(100, 100, (3, 1), Clock())
    assert [await limiter.check(f"+{n}") for n in range(5)] == [Verdict.ALLOW] * 3 + [Verdict.DROP] * 2


async def test_idempotency_shares_the_first_reply_and_survives_an_abandoned_owner(make: Make) -> None:
    store = make.idempotency()
    assert await store.claim_if_done("SM1") is None
    assert await store.claim("SM1") is None  # the owner
    waiters = [asyncio.ensure_future(store.claim("SM1")) for _ in range(3)]
    await asyncio.sleep(0.05)
    await store.finish("SM1", "<Response/>")
    assert await asyncio.gather(*waiters) == ["<Response/>"] * 3
    assert await store.claim_if_done("SM1") == "<Response/>"
    assert await store.claim("SM1") == "<Response/>"
    assert await store.claim("SM2") is None
    retry = asyncio.ensure_future(store.claim("SM2"))
    await asyncio.sleep(0.05)
    await store.abandon("SM2")
    assert await retry is None  # the repeat runs it after all
    await store.finish("SM2", "second")
    assert await store.claim_if_done("SM2") == "second"


def without_context(admitted: Admitted) -> Admitted:
    """The gate's decision alone (the context it read for an admitted text is checked on its own)."""
    return dataclasses.replace(admitted, context=None)


async def test_admission_reads_the_context_of_an_admitted_text(make: Make) -> None:
    contexts = make.contexts()
    store = make.idempotency()
    limiter = make.limiter(1, 6, (1000, 1000), Clock())
    if make.redis:
        assert isinstance(limiter, RedisRateLimiter) and isinstance(store, RedisIdempotency)
        assert isinstance(contexts, RedisContextStore)
        gate: Admission = RedisAdmission(make.client, limiter, store, RedisPageStore(make.client, prefix=make.prefix),
                                         contexts)  # fmt: skip
    else:
        gate = LocalAdmission(limiter, store, make.pages(), contexts)
    remembered = Context(Intent.METRICS, {"metric": "cpu", "service": "checkout"})
    await contexts.put("+1", remembered)
    assert (await gate.admit("SM1", "+1")).context == remembered
    assert (await gate.admit("SM2", "+1")).context is None  # limited: not read


async def test_admission_checks_the_sid_then_the_limits_then_claims(make: Make) -> None:
    clock = Clock()
    store = make.idempotency()
    gate = make.admission(2, clock, store)
    assert without_context(await gate.admit("SM1", "+1")) == Admitted(claimed=True)
    await store.finish("SM1", "<Response>first</Response>")
    for _ in range(3):  # a repeat gets the first reply, and costs the number nothing
        assert without_context(await gate.admit("SM1", "+1")) == Admitted(earlier="<Response>first</Response>")
    assert without_context(await gate.admit("SM2", "+1")) == Admitted(claimed=True)
    assert without_context(await gate.admit("SM3", "+1")) == Admitted(verdict=Verdict.WARN)
    assert without_context(await gate.admit("SM4", "+1")) == Admitted(verdict=Verdict.DROP)
    assert without_context(await gate.admit("", "+2")) == Admitted()  # no sid: limited, never claimed
    clock.now += 10
    assert without_context(await gate.admit("SM3", "+1")) == Admitted(claimed=True)  # a limited text was not claimed


async def test_admission_waits_for_a_sid_another_process_is_answering(make: Make) -> None:
    store = make.idempotency()
    gate = make.admission(10, Clock(), store)
    assert (await gate.admit("SM1", "+1")).claimed
    repeat = asyncio.ensure_future(gate.admit("SM1", "+1"))
    await asyncio.sleep(0.05)
    assert not repeat.done()
    await store.finish("SM1", "answered")
    assert without_context(await repeat) == Admitted(earlier="answered")
    assert (await gate.admit("SM2", "+1")).claimed
    retry = asyncio.ensure_future(gate.admit("SM2", "+1"))
    await asyncio.sleep(0.05)
    await store.abandon("SM2")  # the owner failed: the repeat runs it
    assert without_context(await retry) == Admitted(claimed=True)


async def test_settling_keeps_the_pages_and_the_first_reply(make: Make) -> None:
    store, pages = make.idempotency(), make.pages()
    gate = make.admission(10, Clock(), store, pages)
    await pages.keep("+1", ["old 2", "old 3"])
    assert (await gate.admit("SM1", "+1")).claimed
    await gate.settle("+1", ["page 2", "page 3"], "SM1", "<Response>1</Response>")
    assert await gate.admit("SM1", "+1") == Admitted(earlier="<Response>1</Response>")
    assert await pages.next("+1") == ("page 2", 1)
    await gate.settle("+1", None, None, "")  # "more": the kept pages stay
    assert await pages.next("+1") == ("page 3", 0)
    await gate.settle("+1", ["x"], None, "")
    await gate.settle("+1", [], "SM1", "<Response>second</Response>")  # no pages; the first reply stays
    assert await pages.next("+1") is None
    assert await store.claim_if_done("SM1") == "<Response>1</Response>"


async def test_admissions_arriving_together_share_round_trips_and_keep_their_answers(
    client: Redis, prefix: str
) -> None:
    """Fifty texts at once go to Redis in shared round trips (automatic pipelining): each still gets its own
    verdict, the bucket is not overdrawn, and a script Redis has forgotten is loaded again for the callers
    that met it."""
    clock = Clock()
    limiter = RedisRateLimiter(client, 20, 6, global_capacity=1000, global_per_minute=1000, prefix=prefix,
                               clock=clock)  # fmt: skip
    store = RedisIdempotency(client, prefix=prefix)
    gate = RedisAdmission(client, limiter, store, RedisPageStore(client, prefix=prefix),
                          RedisContextStore(client, prefix=prefix))  # fmt: skip
    verdicts = await asyncio.gather(*(gate.admit(f"SM{n}", "+1") for n in range(50)))
    assert sum(v.claimed for v in verdicts) == 20
    assert [v.verdict for v in verdicts].count(Verdict.WARN) == 1
    assert [v.verdict for v in verdicts].count(Verdict.DROP) == 29
    await client.script_flush()
    again = await asyncio.gather(*(gate.admit(f"SN{n}", "+2") for n in range(5)))
    assert all(v.claimed for v in again)
    await asyncio.gather(*(gate.settle("+2", [], f"SN{n}", f"reply {n}") for n in range(5)))
    assert [await store.claim_if_done(f"SN{n}") for n in range(5)] == [f"reply {n}" for n in range(5)]


async def test_idempotency_forgets_after_its_ttl(make: Make) -> None:
    store = make.idempotency(ttl_s=0.3)
    assert await store.claim("SM1") is None
    await store.finish("SM1", "a")
    await asyncio.sleep(0.5)
    assert await store.claim_if_done("SM1") is None
    assert await store.claim("SM1") is None


async def test_dedup_sees_repeats_within_its_ttl_and_never_an_empty_key(make: Make) -> None:
    dedup = make.dedup(0.3)
    assert [await dedup.seen("k1"), await dedup.seen("k1"), await dedup.seen("k2")] == [False, True, False]
    assert [await dedup.seen(""), await dedup.seen("")] == [False, False]
    await asyncio.sleep(0.5)
    assert await dedup.seen("k1") is False


async def test_the_budget_sends_then_one_summary_then_holds_until_the_summary_is_a_window_old(make: Make) -> None:
    clock = Clock()
    budget = make.budget(3, 60, clock)
    decisions = []
    for _ in range(5):
        decisions.append(await budget.take("+1"))
        clock.now += 1
    assert decisions == ["send", "send", "summary", "hold", "hold"]
    assert await budget.take("+2") == "send"
    clock.now += 55  # the summary went out at +2 s: 60 s later it is out of the window
    assert await budget.take("+1") == "hold"
    clock.now += 2
    assert await budget.take("+1") == "send"


async def test_the_alert_book_reports_new_repeats_acks_and_resolutions(make: Make) -> None:
    clock = Clock()
    book = make.book(clock)
    assert await book.update(note(event("a"), event("b"))) == Changes(firing=(event("a"), event("b")))
    assert await book.update(note(event("a"))) == Changes(firing=(event("a"),))  # a repeat nobody acked
    clock.now += 5
    acked = await book.ack("a", "alice")
    assert acked is not None and (acked.acked_by, acked.acked_at) == ("alice", clock.now)
    assert await book.ack("zzz", "alice") is None
    assert await book.update(note(event("a"))) == Changes(quiet=(event("a"),))
    assert await book.unack("a") is True and await book.unack("a") is False
    assert await book.update(note(event("a"))) == Changes(firing=(event("a"),))
    first = await book.get("b")
    assert first is not None and first.first_seen == 1_700_000_000.0 and first.acked_by is None
    assert [a.event.fingerprint for a in await book.open_alerts()] == ["b", "a"]  # oldest update first
    assert [a.event.fingerprint for a in await book.by_name("highcpu")] == ["b", "a"]
    resolved = event("a", "resolved", 0, 30)
    assert await book.update(note(resolved)) == Changes(resolved=(resolved,))
    assert await book.update(note(resolved)) == Changes(quiet=(resolved,))  # each resolution reported once
    assert await book.get("a") is None and await book.unack("a") is False


async def test_a_late_firing_of_a_resolved_episode_is_quiet_until_the_tombstone_expires(make: Make) -> None:
    clock = Clock()
    book = make.book(clock, tombstone_s=3600)
    await book.update(note(event("a", starts=0)))
    await book.update(note(event("a", "resolved", 0, 30)))
    assert await book.update(note(event("a", starts=0))) == Changes(quiet=(event("a", starts=0),))
    assert await book.update(note(event("a", starts=30))) == Changes(quiet=(event("a", starts=30),))  # == end
    assert await book.update(note(event("a", starts=31))) == Changes(firing=(event("a", starts=31),))  # a new episode
    await book.update(note(event("a", "resolved", 31, None)))  # no end: its start counts
    assert await book.update(note(event("a", starts=None))) == Changes(quiet=(event("a", starts=None),))
    clock.now += 3601
    assert await book.update(note(event("a", starts=0))) == Changes(firing=(event("a", starts=0),))
    await book.update(note(event("b", "resolved", None, None)))  # a tombstone with no time: every firing is stale
    assert await book.update(note(event("b", starts=500))) == Changes(quiet=(event("b", starts=500),))


async def test_the_alert_book_is_bounded_dropping_the_least_recently_updated(make: Make) -> None:
    book = make.book(Clock(), max_alerts=2)
    for fp in ["a", "b", "c", "b", "d"]:
        await book.update(note(event(fp)))
    assert [a.event.fingerprint for a in await book.open_alerts()] == ["b", "d"]
    assert await book.get("a") is None and await book.get("c") is None


async def test_a_silence_code_works_once_and_only_while_fresh(make: Make) -> None:
    clock = Clock()
    actions = make.actions(clock, proposal_ttl_s=300)
    proposal = await actions.propose("+1", "fp", "HighCPU{instance=db1}", 3600, "silence 1 1h")
    assert proposal.code.isdigit() and len(proposal.code) == 4 and proposal.at == clock.now
    assert await actions.pending_code("+1") == proposal.code and await actions.pending_code("+2") is None
    wrong = "0000" if proposal.code != "0000" else "1111"
    assert await actions.accept("+1", wrong) is None
    assert await actions.accept("+2", proposal.code) is None
    assert await actions.accept("+1", proposal.code) == proposal
    assert await actions.accept("+1", proposal.code) is None
    assert await actions.pending_code("+1") is None
    second = await actions.propose("+1", "fp", "d", 60, "t")
    newer = await actions.propose("+1", "fp2", "d2", 120, "t2")  # replaces the older one
    assert await actions.pending_code("+1") == newer.code
    assert await actions.accept("+1", newer.code) == newer != second
    late = await actions.propose("+1", "fp", "d", 60, "t")
    clock.now += 301
    assert await actions.pending_code("+1") is None
    assert await actions.accept("+1", late.code) is None


async def test_a_withdrawn_proposal_is_gone_whatever_its_code(make: Make) -> None:
    """ "no", or another command: the proposal is dropped, and its code no longer confirms anything."""
    clock = Clock()
    actions = make.actions(clock, proposal_ttl_s=300)
    proposal = await actions.propose("+1", "fp", "HighCPU{instance=db1}", 3600, "silence 1 1h")
    await actions.propose("+2", "fp", "d", 60, "t")
    assert await actions.withdraw("+1") == proposal
    assert await actions.withdraw("+1") is None
    assert await actions.pending_code("+1") is None and await actions.accept("+1", proposal.code) is None
    assert await actions.pending_code("+2") is not None  # another person's is untouched
    await actions.propose("+1", "fp", "d", 60, "t")
    clock.now += 301
    assert await actions.withdraw("+1") is None  # expired: nothing was pending


async def test_undo_works_once_within_its_window_and_keep_puts_it_back(make: Make) -> None:
    clock = Clock()
    actions = make.actions(clock, undo_window_s=300)
    done = await actions.done("+1", "silence", "fp", "HighCPU", "sil-1")
    assert (done.kind, done.silence_id, done.at) == ("silence", "sil-1", clock.now)
    assert await actions.undoable("+1") == done
    assert await actions.undoable("+1") is None
    await actions.keep("+1", done)
    assert await actions.undoable("+1") == done
    await actions.done("+1", "ack", "fp", "HighCPU")
    clock.now += 301
    assert await actions.undoable("+1") is None


async def test_the_lease_is_held_by_one_holder_until_released(make: Make) -> None:
    first, second = make.lease(), make.lease()
    assert await first.hold() is True and await first.hold() is True
    assert await second.hold() is False
    await first.release()
    assert await second.hold() is True
    assert await first.hold() is False
    await first.release()  # not the holder: nothing changes
    assert await second.hold() is True
    await second.release()


# --- Redis against the in-memory reference, on long random histories -------------------------------------


async def test_the_rate_limiter_decides_as_the_in_memory_one(client: Redis, prefix: str) -> None:
    rng, clock = random.Random(7), Clock()
    redis_limiter = RedisRateLimiter(client, 3, 12, global_capacity=8, global_per_minute=30, prefix=prefix, clock=clock)
    memory = InMemoryRateLimiter(TokenBuckets(3, 12, clock=clock), TokenBuckets(8, 30, clock=clock))
    for _ in range(600):
        clock.now += rng.choice([0, 0, 0.5, 1, 3, 5, 20])
        number = rng.choice(["+1", "+2", "+3", "+4"])
        assert await redis_limiter.check(number) == await memory.check(number)


async def test_the_budget_decides_as_the_in_memory_one(client: Redis, prefix: str) -> None:
    rng, clock = random.Random(11), Clock()
    redis_budget = RedisBudget(client, 4, 60, prefix=prefix, clock=clock)
    memory = SendBudget(4, 60, clock=clock)
    for _ in range(600):
        clock.now += rng.choice([0, 0, 1, 5, 15, 30, 61])
        number = rng.choice(["+1", "+2", "+3"])
        assert await redis_budget.take(number) == memory.take(number)


async def test_the_alert_book_answers_as_the_in_memory_one(client: Redis, prefix: str) -> None:
    rng, clock = random.Random(5), Clock()
    redis_book = RedisAlertBook(client, 600, 3, prefix=prefix, clock=clock)
    memory = AlertBook(600, 3, clock=clock)
    minutes = [None, 0, 10, 20, 30]
    for step in range(800):
        clock.now += rng.choice([0, 1, 60, 700])
        action = rng.random()
        fp = rng.choice("abcde")
        if action < 0.1:
            who = rng.choice(["alice", "bob smith"])
            assert await redis_book.ack(fp, who) == await memory.ack(fp, who), step
        elif action < 0.15:
            assert await redis_book.unack(fp) == await memory.unack(fp), step
        else:
            alerts = tuple(
                event(f, rng.choice(["firing", "resolved"]), rng.choice(minutes), rng.choice(minutes),
                      severity=rng.choice(list(Severity)))
                for f in rng.choices("abcde", k=rng.randint(1, 3))  # the same alert twice, now and then
            )  # fmt: skip
            assert await redis_book.update(note(*alerts)) == await memory.update(note(*alerts)), step
        assert await redis_book.open_alerts() == await memory.open_alerts(), step


# --- across instances: two pools, concurrent tasks ----------------------------------------------------------


async def test_fifty_concurrent_claims_of_one_sid_have_one_owner_and_all_get_its_reply(
    client: Redis, other: Redis, prefix: str
) -> None:
    stores = [RedisIdempotency(c, prefix=prefix) for c in (client, other)]
    claims = [asyncio.ensure_future(stores[n % 2].claim("SM-same")) for n in range(50)]
    await asyncio.sleep(0.2)
    owners = [n for n, claim in enumerate(claims) if claim.done() and claim.result() is None]
    assert len(owners) == 1
    assert sum(claim.done() for claim in claims) == 1  # the others wait
    await stores[owners[0] % 2].finish("SM-same", "the reply")
    results = await asyncio.gather(*claims)
    assert results.count(None) == 1 and results.count("the reply") == 49


async def test_a_waiter_takes_over_an_abandoned_claim_in_another_instance(
    client: Redis, other: Redis, prefix: str
) -> None:
    first, second = RedisIdempotency(client, prefix=prefix), RedisIdempotency(other, prefix=prefix)
    assert await first.claim("SM1") is None
    waiter = asyncio.ensure_future(second.claim("SM1"))
    await asyncio.sleep(0.05)
    await second.abandon("SM1")  # not its claim: changes nothing
    await asyncio.sleep(0.05)
    assert not waiter.done()
    await first.abandon("SM1")
    assert await asyncio.wait_for(waiter, 1) is None


async def test_a_dead_owners_claim_lapses_and_a_waiter_gives_up_within_its_bound(client: Redis, prefix: str) -> None:
    store = RedisIdempotency(client, running_ttl_s=0.4, wait_s=0.2, prefix=prefix)
    assert await store.claim("SM1") is None  # the owner then "dies": never finishes
    started = time.monotonic()
    with pytest.raises(ReplyPending):
        await store.claim("SM1")
    assert time.monotonic() - started < 0.5
    await asyncio.sleep(0.3)
    assert await store.claim("SM1") is None  # the marker lapsed: a repeat runs it


async def test_two_instances_share_one_rate_limit(client: Redis, other: Redis, prefix: str) -> None:
    limiters = [RedisRateLimiter(c, 10, 0.001, global_capacity=1000, global_per_minute=1000, prefix=prefix)
                for c in (client, other)]  # fmt: skip
    verdicts = await asyncio.gather(*(limiters[n % 2].check("+1") for n in range(40)))
    assert (verdicts.count(Verdict.ALLOW), verdicts.count(Verdict.WARN), verdicts.count(Verdict.DROP)) == (10, 1, 29)
    overall = [RedisRateLimiter(c, 1000, 1000, global_capacity=5, global_per_minute=0.001, prefix=prefix + "g:")
               for c in (client, other)]  # fmt: skip
    verdicts = await asyncio.gather(*(overall[n % 2].check(f"+{n}") for n in range(20)))
    assert verdicts.count(Verdict.ALLOW) == 5 and verdicts.count(Verdict.DROP) == 15


async def test_the_bucket_refills_on_redis_own_clock(client: Redis, prefix: str) -> None:
    limiter = RedisRateLimiter(client, 1, 600, global_capacity=1000, global_per_minute=1000, prefix=prefix)  # 10/s
    assert [await limiter.check("+1") for _ in range(3)] == [Verdict.ALLOW, Verdict.WARN, Verdict.DROP]
    await asyncio.sleep(0.15)
    assert await limiter.check("+1") is Verdict.ALLOW


async def test_two_instances_share_one_send_budget(client: Redis, other: Redis, prefix: str) -> None:
    budgets = [RedisBudget(c, 5, 600, prefix=prefix) for c in (client, other)]
    decisions = await asyncio.gather(*(budgets[n % 2].take("+1") for n in range(20)))
    assert (decisions.count("send"), decisions.count("summary"), decisions.count("hold")) == (4, 1, 15)


async def test_the_lease_is_taken_over_when_its_holder_stops_renewing(client: Redis, other: Redis, prefix: str) -> None:
    first, second = RedisLease(client, "rules", 0.4, prefix=prefix), RedisLease(other, "rules", 0.4, prefix=prefix)
    assert await first.hold() is True
    for _ in range(4):  # renewed more often than its TTL, it stays
        await asyncio.sleep(0.2)
        assert await first.hold() is True and await second.hold() is False
    await asyncio.sleep(0.6)  # the first holder stopped renewing
    assert await second.hold() is True
    assert await first.hold() is False
    await first.release()
    assert await second.hold() is True
    await second.release()
    assert await first.hold() is True


async def test_a_silence_code_is_accepted_once_across_instances(client: Redis, other: Redis, prefix: str) -> None:
    actions = [RedisActions(c, prefix=prefix) for c in (client, other)]
    proposal = await actions[0].propose("+1", "fp", "d", 60, "t")
    taken = await asyncio.gather(*(actions[n % 2].accept("+1", proposal.code) for n in range(20)))
    assert taken.count(proposal) == 1 and taken.count(None) == 19


async def test_a_resolution_is_reported_once_across_instances(client: Redis, other: Redis, prefix: str) -> None:
    books = [RedisAlertBook(c, prefix=prefix) for c in (client, other)]
    await books[0].update(note(event("a")))
    resolved = note(event("a", "resolved", 0, 5))
    changes = await asyncio.gather(*(books[n % 2].update(resolved) for n in range(20)))
    assert sum(bool(c.resolved) for c in changes) == 1
    firing = await asyncio.gather(*(books[n % 2].update(note(event("b"))) for n in range(20)))
    assert all(c.firing for c in firing)  # one new, the others repeats of an unacknowledged alert
    assert len(await books[1].open_alerts()) == 1


async def test_the_context_bound_holds_under_concurrent_writes(client: Redis, other: Redis, prefix: str) -> None:
    stores = [RedisContextStore(c, 60, 10, prefix=prefix) for c in (client, other)]
    await asyncio.gather(*(stores[n % 2].put(f"+{n}", Context(Intent.STATUS)) for n in range(100)))
    live = [n for n in range(100) if not (await stores[0].get(f"+{n}")).empty]
    assert len(live) == 10
    assert await client.zcard(f"{prefix}ctx-index") == 10


async def test_every_key_is_under_the_prefix_and_expires(client: Redis, prefix: str) -> None:
    before = {key async for key in client.scan_iter(match="*")}
    await exercise_every_store(client, prefix)
    new = {key async for key in client.scan_iter(match="*")} - before
    assert len(new) >= 10 and all(key.startswith(prefix) for key in new), sorted(new)
    # Two counters, and the open alerts: bounded by max_alerts, kept until resolved, as in memory.
    lasting = {f"{prefix}ctx-writes"} | {
        f"{prefix}alerts:{part}" for part in ("events", "first", "acks", "order", "updates")
    }
    for key in new - lasting:
        assert await client.pttl(key) > 0, key
    assert await client.get(f"{prefix}ctx:+1") == '{"i":"logs","s":{"service":"payment","terms":["a"]}}'


async def exercise_every_store(client: Redis, prefix: str) -> None:
    """Every store used once, its keys left behind."""
    await RedisContextStore(client, 60, 100, prefix=prefix).put(
        "+1", Context(Intent.LOGS, {"service": "payment", "terms": ("a",)})
    )
    await RedisPageStore(client, 60, prefix=prefix).keep("+1", ["a", "b"])
    await RedisRateLimiter(client, 5, 10, global_capacity=100, global_per_minute=600, prefix=prefix).check("+1")
    sids = RedisIdempotency(client, prefix=prefix)
    await sids.claim("SM1")
    await sids.finish("SM1", "r")
    await sids.claim("SM2")
    await RedisDedup(client, 60, prefix=prefix).seen("delivery")
    budget = RedisBudget(client, 2, 60, prefix=prefix)
    await budget.take("+1")
    await budget.take("+1")
    book = RedisAlertBook(client, prefix=prefix)
    await book.update(note(event("a"), event("b", "resolved", 0, 1)))
    await book.ack("a", "alice")
    actions = RedisActions(client, prefix=prefix)
    await actions.propose("+1", "a", "d", 60, "t")
    await actions.done("+1", "ack", "a", "d")
    await RedisLease(client, "rules", 30, prefix=prefix).hold()


async def test_odd_text_in_alerts_and_users_round_trips(client: Redis, prefix: str) -> None:
    book = RedisAlertBook(client, prefix=prefix, clock=Clock())
    odd = AlertEvent("fp\ud800 é\n", "Disk\x00Full", {"k\udfff": "v ☃"}, "firing", summary="a\tb",
                     starts_at=datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=timezone(timedelta(hours=-5))))  # fmt: skip
    assert await book.update(note(odd)) == Changes(firing=(odd,))
    found = await book.get(odd.fingerprint)
    assert found is not None and found.event == odd and found.event.starts_at == odd.starts_at
    acked = await book.ack(odd.fingerprint, "O'Brien \ud800")
    assert acked is not None and acked.acked_by == "O'Brien \ud800"
    contexts = RedisContextStore(client, prefix=prefix)
    await contexts.put("+1\ud800", Context(Intent.LOGS, {"service": "pay\ud800"}, alerts=(odd.fingerprint,)))
    assert await contexts.get("+1\ud800") == Context(Intent.LOGS, {"service": "pay\ud800"}, alerts=(odd.fingerprint,))


# --- serialisation -------------------------------------------------------------------------------------------

slot_names = st.text(min_size=1, max_size=12)
slot_values = st.one_of(st.text(max_size=20), st.integers(), st.tuples(st.text(max_size=8)),
                        st.lists(st.text(max_size=8), max_size=4).map(tuple))  # fmt: skip
contexts = st.builds(
    Context,
    intent=st.one_of(st.none(), st.sampled_from(list(Intent))),
    slots=st.dictionaries(slot_names, slot_values, max_size=5),
    suggestion=st.one_of(st.none(), st.text(max_size=30)),
    pending_code=st.one_of(st.none(), st.text(max_size=6)),
    alerts=st.lists(st.text(max_size=12), max_size=5).map(tuple),
)


@settings(max_examples=examples(200), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(context=contexts)
async def test_any_context_round_trips_through_redis(client: Redis, context: Context) -> None:
    assert context_from_json(context_to_json(context)) == context
    store = RedisContextStore(client, 60, 1000, prefix="roundtrip:")
    await store.put("+1", context)
    got = await store.get("+1")
    assert got == (Context() if context.empty else context)
    assert context.empty or all(type(got.slots[name]) is type(value) for name, value in context.slots.items())


@pytest.mark.parametrize(
    "stored",
    [
        pytest.param("not json", id="not-json"),
        pytest.param('{"i":"no-such-intent"}', id="unknown-intent"),
        pytest.param('{"s":{"x":[1]}}', id="odd-slot"),
        pytest.param("[]", id="not-an-object"),
    ],
)
async def test_an_unreadable_context_reads_as_none(client: Redis, prefix: str, stored: str) -> None:
    await client.set(f"{prefix}ctx:+1", stored)
    assert await RedisContextStore(client, prefix=prefix).get("+1") == Context()


# --- building from settings, outages ---------------------------------------------------------------------------


async def test_open_redis_stores_builds_every_store_from_the_settings(redis: RedisServer, prefix: str) -> None:
    config = Settings(rate_burst=2, rate_per_minute=1, alert_budget_texts=3, alert_budget_window_s=60,
                      context_ttl_s=120, context_max_users=7, undo_window_s=90, rules_interval_s=20)  # fmt: skip
    stores = await open_redis_stores(redis.url, config, prefix=prefix)
    try:
        assert isinstance(stores, RedisStores) and stores.shared is True
        assert [await stores.limiter.check("+1") for _ in range(3)] == [Verdict.ALLOW, Verdict.ALLOW, Verdict.WARN]
        assert [await stores.budget.take("+1") for _ in range(4)] == ["send", "send", "summary", "hold"]
        assert isinstance(stores.contexts, RedisContextStore)
        assert (stores.contexts.ttl_s, stores.contexts.max_users) == (120, 7)
        assert isinstance(stores.actions, RedisActions) and stores.actions.undo_window_s == 90
        assert isinstance(stores.rules_lease, RedisLease) and stores.rules_lease.ttl_s == 60
        assert await stores.rules_lease.hold() is True
        assert PASSWORD not in repr(stores)
    finally:
        await stores.close()
    check = redis_client(redis.url)
    try:
        assert await RedisLease(check, "rules", 60, prefix=prefix).hold() is True  # close() released it
    finally:
        await check.aclose()


@pytest.mark.parametrize(
    "url",
    [
        pytest.param(
            lambda port: f"redis://:{quote('not-' + PASSWORD, safe='')}@127.0.0.1:{port}/0", id="wrong-password"
        ),
        pytest.param(
            lambda port: f"redis://:{quote(PASSWORD, safe='')}@127.0.0.1:{free_port()}/0", id="nothing-listening"
        ),
    ],
)
async def test_open_redis_stores_fails_fast_and_safely(redis: RedisServer, url: Callable[[int], str]) -> None:
    target = url(redis.port)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as failure:
        await open_redis_stores(target, Settings())
    assert time.monotonic() - started < 1.5
    assert_safe(str(failure.value), target)


def test_a_url_that_is_not_redis_is_a_config_error_without_the_url() -> None:
    with pytest.raises(ConfigError) as failure:
        redis_client(f"http://:{PASSWORD}@example.com:6379")
    assert PASSWORD not in str(failure.value) and failure.value.__cause__ is None


def assert_safe(message: str, url: str) -> None:
    for secret in [PASSWORD, quote(PASSWORD, safe=""), url, "127.0.0.1", "redis://", str(urlsplit(url).port)]:
        assert secret not in message, (secret, message)
    assert message.startswith("Redis")


Call = Callable[[], Awaitable[Any]]


async def every_method(client: Redis, prefix: str) -> dict[str, Call]:
    """One call of every method of every shared store (set up beforehand where a call needs state)."""
    contexts = RedisContextStore(client, 60, 100, prefix=prefix)
    pages = RedisPageStore(client, 60, prefix=prefix)
    limiter = RedisRateLimiter(client, 1000, 1000, global_capacity=1000, global_per_minute=1000, prefix=prefix)
    sids = RedisIdempotency(client, prefix=prefix)
    dedup = RedisDedup(client, 60, prefix=prefix)
    budget = RedisBudget(client, 1000, 60, prefix=prefix)
    book = RedisAlertBook(client, prefix=prefix)
    actions = RedisActions(client, prefix=prefix)
    lease = RedisLease(client, "rules", 30, prefix=prefix)
    counter = iter(range(1_000_000))

    async def claim_and_abandon() -> None:
        sid = f"SM{next(counter)}"
        assert await sids.claim(sid) is None
        await sids.abandon(sid)

    owned = [f"SM-owned-{n}" for n in range(3)]
    for sid in owned:  # so each abandon() below has a claim of its own to drop, and talks to Redis
        assert await sids.claim(sid) is None

    async def abandon_own_claim() -> None:
        await sids.abandon(owned.pop())

    return dict([
        ("contexts.get", lambda: contexts.get("+1")),
        ("contexts.put", lambda: contexts.put("+1", Context(Intent.STATUS))),
        ("contexts.clear", lambda: contexts.clear("+1")),
        ("pages.keep", lambda: pages.keep("+1", ["a"])),
        ("pages.next", lambda: pages.next("+1")),
        ("limiter.check", lambda: limiter.check("+1")),
        ("idempotency.claim_if_done", lambda: sids.claim_if_done("SM1")),
        ("idempotency.claim", claim_and_abandon),
        ("idempotency.finish", lambda: sids.finish(f"SM-f{next(counter)}", "r")),
        ("idempotency.abandon", abandon_own_claim),
        ("dedup.seen", lambda: dedup.seen(f"k{next(counter)}")),
        ("budget.take", lambda: budget.take("+1")),
        ("alerts.update", lambda: book.update(note(event("a")))),
        ("alerts.get", lambda: book.get("a")),
        ("alerts.open_alerts", book.open_alerts),
        ("alerts.by_name", lambda: book.by_name("HighCPU")),
        ("alerts.ack", lambda: book.ack("a", "alice")),
        ("alerts.unack", lambda: book.unack("a")),
        ("actions.propose", lambda: actions.propose("+1", "a", "d", 60, "t")),
        ("actions.accept", lambda: actions.accept("+1", "4821")),
        ("actions.withdraw", lambda: actions.withdraw("+1")),
        ("actions.pending_code", lambda: actions.pending_code("+1")),
        ("actions.done", lambda: actions.done("+1", "ack", "a", "d")),
        ("actions.undoable", lambda: actions.undoable("+1")),
        ("actions.keep", lambda: actions.keep("+1", Done("ack", "a", "d", time.time()))),
        ("lease.hold", lease.hold),
        ("lease.release", lease.release),
    ])  # fmt: skip


@pytest.fixture
def outage() -> Iterator[RedisServer]:
    """A server of the test's own, to stop, pause and restart."""
    with redis_server() as server:
        yield server


async def test_every_method_fails_fast_and_safely_while_redis_is_down_then_works_again(outage: RedisServer) -> None:
    client = redis_client(outage.url)
    try:
        calls = await every_method(client, "o:")
        for call in calls.values():
            await call()  # all working, connections pooled
        outage.stop()
        for name, call in calls.items():
            started = time.monotonic()
            with pytest.raises(StoreUnavailable) as failure:
                await call()
            assert time.monotonic() - started < 1.5, name
            assert_safe(str(failure.value), outage.url)
        outage.start()  # empty, on the same port: scripts must be loaded again
        for name, call in calls.items():
            try:
                await call()
            except StoreUnavailable as exc:  # pragma: no cover - the assertion's message
                pytest.fail(f"{name} still fails after Redis came back: {exc}")
    finally:
        await client.aclose()


async def test_a_read_only_replica_is_unavailable_for_writes_with_the_reason(outage: RedisServer) -> None:
    """What a failover looks like from a process still talking to the old primary."""
    client = redis_client(outage.url)
    try:
        calls = await every_method(client, "ro:")
        await client.replicaof("127.0.0.1", free_port())
        for name in ["contexts.put", "limiter.check", "alerts.update", "lease.hold", "budget.take", "dedup.seen"]:
            with pytest.raises(StoreUnavailable) as failure:
                await calls[name]()
            assert str(failure.value) == "Redis refused a write: it is a read-only replica", name
        assert await calls["contexts.get"]() == Context()  # reads still work
        await client.replicaof("NO", "ONE")
        await calls["contexts.put"]()
    finally:
        await client.aclose()


async def test_a_hung_redis_times_out_quickly(outage: RedisServer) -> None:
    client = redis_client(outage.url)
    process = outage.process
    assert process is not None
    try:
        calls = await every_method(client, "h:")
        process.popen.send_signal(signal.SIGSTOP)
        try:
            for name in ["contexts.get", "limiter.check", "alerts.update", "lease.hold"]:
                started = time.monotonic()
                with pytest.raises(StoreUnavailable) as failure:
                    await calls[name]()
                assert time.monotonic() - started < 1.5, name
                assert str(failure.value) == "Redis did not answer in time"
        finally:
            process.popen.send_signal(signal.SIGCONT)
        await asyncio.sleep(0.1)
        assert await RedisContextStore(client, prefix="h:").get("+404") == Context()
    finally:
        await client.aclose()
