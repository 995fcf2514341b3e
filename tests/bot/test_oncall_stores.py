"""The escalation and override stores' contract, in memory and against a real Redis: a repeat never restarts an
escalation, exactly one of many racing runners claims a step (two client pools stand in for two instances),
a claim lapses and is taken over once, acks and resolutions land once, and Redis keeps it all for a process
that starts afresh."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from uuid import uuid4

import pytest
from redis.asyncio import Redis

from bot.alerting.model import AlertEvent, Severity
from bot.oncall.escalation import Event, begin
from bot.oncall.schedules import Override
from bot.state.memory.oncall import InMemoryEscalations, InMemoryOverrides
from bot.state.protocols import EscalationStore, OverrideStore, StoreUnavailable
from bot.state.redis.client import redis_client
from bot.state.redis.oncall import RedisEscalations, RedisOverrides
from tests.bot.servers_redis import RedisServer, redis_server
from tests.servers import free_port

pytestmark = [pytest.mark.anyio, pytest.mark.servers]

T0 = 1_767_700_000.0


Trio = tuple[EscalationStore, EscalationStore, OverrideStore]


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


@pytest.fixture
async def clients(redis: RedisServer) -> AsyncIterator[tuple[Redis, Redis]]:
    first, second = redis_client(redis.url), redis_client(redis.url)
    try:
        yield first, second
    finally:
        await first.aclose()
        await second.aclose()


@pytest.fixture(params=["memory", "redis"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def stores(kind: str, clients: tuple[Redis, Redis]) -> Trio:
    """The escalation store as two instances see it, and the override store."""
    if kind == "memory":
        shared = InMemoryEscalations()
        return shared, shared, InMemoryOverrides()
    prefix = f"t{uuid4().hex[:10]}:"
    return (RedisEscalations(clients[0], prefix=prefix), RedisEscalations(clients[1], prefix=prefix),
            RedisOverrides(clients[0], prefix=prefix))  # fmt: skip


def alert(fingerprint: str = "fp1") -> AlertEvent:
    return AlertEvent(fingerprint, "DiskFull", {"alertname": "DiskFull", "instance": "db1"}, "firing",
                      Severity.CRITICAL, "Disk 97% full")  # fmt: skip


async def test_a_repeat_does_not_restart_an_escalation_but_a_new_episode_does(stores: Trio) -> None:
    one, two, _ = stores
    assert await one.start(begin(alert(), "default", T0))
    assert not await two.start(begin(alert(), "default", T0 + 60))
    timeline = await two.get("fp1")
    assert timeline is not None and timeline.started == T0 and timeline.alert == alert() and timeline.due == T0
    assert await one.ack("fp1", "alice", T0 + 1) is not None
    assert not await two.start(begin(alert(), "default", T0 + 60))  # acked still counts as running
    assert (await one.resolve("fp1", T0 + 2)) is not None
    assert await two.resolve("fp1", T0 + 3) is None  # ended once
    assert await two.start(begin(alert(), "other", T0 + 60))
    again = await one.get("fp1")
    assert again is not None and again.policy == "other" and again.events == () and again.state == "open"


async def test_one_of_many_racing_runners_claims_a_step(stores: Trio) -> None:
    one, two, _ = stores
    await one.start(begin(alert(), "default", T0))
    results = await asyncio.gather(*((one if n % 2 else two).claim("fp1", None, T0, f"runner{n}", T0 + 60)
                                     for n in range(20)))  # fmt: skip
    winners = [n for n, claimed in enumerate(results) if claimed is not None]
    assert len(winners) == 1
    owner = f"runner{winners[0]}"
    assert not await one.complete("fp1", 0, "runner-else", T0 + 300)  # only the claimant completes
    assert await two.complete("fp1", 0, owner, T0 + 300)
    assert not await one.complete("fp1", 0, owner, T0 + 300)  # and only once
    assert await one.claim("fp1", None, T0 + 299, "early", T0 + 400) is None  # not due yet
    assert await one.due(T0 + 299, 10) == []
    assert await one.due(T0 + 300, 10) == ["fp1"]
    hurried = await two.claim("fp1", 1, T0 + 10, "escalate", T0 + 70, hurry=True)  # escalate N: before it is due
    assert hurried is not None and hurried.step == 1
    assert await one.claim("fp1", 0, T0 + 10, "stale", T0 + 70, hurry=True) is None  # a step that already ran


async def test_a_lapsed_claim_is_taken_over_once_and_the_dead_runner_cannot_complete(stores: Trio) -> None:
    one, two, _ = stores
    await one.start(begin(alert(), "default", T0))
    assert await one.claim("fp1", None, T0, "dies", T0 + 60) is not None
    await one.record("fp1", Event(T0, "sms", 0, "alice", "+15551230001", "queued"))
    assert await two.claim("fp1", None, T0 + 59, "early", T0 + 120) is None
    taken = await asyncio.gather(*(two.claim("fp1", None, T0 + 61, f"late{n}", T0 + 121) for n in range(5)))
    assert sum(t is not None for t in taken) == 1
    survivor = next(t for t in taken if t is not None)
    assert survivor.reached(0) == {"+15551230001"}  # the new runner skips whom the dead one reached
    assert not await one.complete("fp1", 0, "dies", None)
    owner = f"late{taken.index(survivor)}"
    assert await two.complete("fp1", 0, owner, None)
    timeline = await one.get("fp1")
    assert timeline is not None and timeline.step == 1 and timeline.due is None
    assert await one.due(T0 + 10_000, 10) == []


async def test_acks_stop_unacks_resume_and_resolution_ends(stores: Trio) -> None:
    one, two, _ = stores
    await one.start(begin(alert(), "default", T0))
    stopped = await asyncio.gather(*(s.ack("fp1", who, T0 + 5) for s, who in [(one, "alice"), (two, "bob")] * 3))
    assert sum(t is not None for t in stopped) == 1
    timeline = await two.get("fp1")
    assert timeline is not None and timeline.state == "acked" and timeline.acked_by in ("alice", "bob")
    assert await one.due(T0 + 100, 10) == []
    assert await one.claim("fp1", None, T0 + 100, "r", T0 + 160) is None  # acked: no step runs
    assert await two.unack("fp1", T0 + 6)
    assert not await two.unack("fp1", T0 + 6)
    assert await one.due(T0 + 100, 10) == ["fp1"]  # it resumes where it stood: step 0 was due at T0
    ended = await two.resolve("fp1", T0 + 7)
    assert ended is not None and ended.state == "resolved"
    assert [e.kind for e in ended.events] == ["acked", "unacked", "resolved"]
    assert await one.due(T0 + 100, 10) == [] and await one.ack("fp1", "alice", T0 + 8) is None
    assert [t.fingerprint for t in await one.recent()] == ["fp1"]  # an ended escalation stays readable a while


async def test_due_is_earliest_first_and_bounded(stores: Trio) -> None:
    one, _, _ = stores
    for n in range(30):
        await one.start(begin(alert(f"fp{n:02d}"), "default", T0 + (29 - n)))
    assert await one.due(T0 + 2, 10) == ["fp29", "fp28", "fp27"]
    assert len(await one.due(T0 + 100, 10)) == 10
    assert len(await one.recent()) == 30


async def test_notes_are_kept_for_their_time(stores: Trio) -> None:
    one, two, _ = stores
    await one.remember("sms:SM1", '{"n": "+15551230001", "s": {"fp1": 0}}', 60)
    assert await two.recall("sms:SM1") == '{"n": "+15551230001", "s": {"fp1": 0}}'
    assert await two.recall("sms:SM2") is None


async def test_overrides_are_kept_until_they_end(stores: Trio) -> None:
    _, _, overrides = stores
    first = Override("payments", "bob", T0, T0 + 3600, T0, "bob")
    second = Override("payments", "carol", T0 + 600, T0 + 7200, T0 + 1, "carol")
    await overrides.add(first)
    await overrides.add(second)
    await overrides.add(Override("infra", "dave", T0, T0 + 60, T0, "dave"))
    assert await overrides.current("payments", T0) == [first, second]
    assert await overrides.current("payments", T0 + 3600) == [second]
    assert await overrides.current("payments", T0 + 7200) == []
    assert await overrides.current("infra", T0) == [Override("infra", "dave", T0, T0 + 60, T0, "dave")]


async def test_redis_keeps_escalations_for_a_process_that_starts_afresh(redis: RedisServer) -> None:
    prefix = f"t{uuid4().hex[:10]}:"
    first = redis_client(redis.url)
    try:
        store = RedisEscalations(first, prefix=prefix)
        await store.start(begin(alert(), "default", T0))
        await store.record("fp1", Event(T0, "sms", 0, "alice", "+15551230001", "queued"))
        await RedisOverrides(first, prefix=prefix).add(Override("payments", "bob", T0, T0 + 60, T0, "bob"))
    finally:
        await first.aclose()
    second = redis_client(redis.url)  # another process, after a restart
    try:
        timeline = await RedisEscalations(second, prefix=prefix).get("fp1")
        assert timeline is not None and [(e.kind, e.name) for e in timeline.events] == [("sms", "alice")]
        assert await RedisOverrides(second, prefix=prefix).current("payments", T0) != []
    finally:
        await second.aclose()


async def test_redis_down_is_store_unavailable() -> None:
    client = redis_client(f"redis://127.0.0.1:{free_port()}/0")
    try:
        store = RedisEscalations(client)
        with pytest.raises(StoreUnavailable):
            await store.start(begin(alert(), "default", T0))
        with pytest.raises(StoreUnavailable):
            await store.due(T0, 10)
        with pytest.raises(StoreUnavailable):
            await RedisOverrides(client).current("payments", T0)
    finally:
        await client.aclose()


async def test_an_ack_during_a_step_keeps_its_next_due_time_for_an_undo(stores: Trio) -> None:
    one, two, _ = stores
    await one.start(begin(alert(), "default", T0))
    assert await one.claim("fp1", None, T0, "runner", T0 + 60) is not None
    assert await two.ack("fp1", "alice", T0 + 1) is not None  # acked while the step's pages go out
    assert await one.complete("fp1", 0, "runner", T0 + 300)
    assert await one.due(T0 + 1000, 10) == []
    assert await two.unack("fp1", T0 + 2)
    assert await one.due(T0 + 299, 10) == [] and await one.due(T0 + 300, 10) == ["fp1"]
    timeline = await one.get("fp1")
    assert timeline is not None and timeline.step == 1 and timeline.due == T0 + 300


async def test_an_escalation_gone_from_redis_leaves_the_due_set_at_its_next_claim(redis: RedisServer) -> None:
    prefix = f"t{uuid4().hex[:10]}:"
    client = redis_client(redis.url)
    try:
        store = RedisEscalations(client, prefix=prefix)
        await store.start(begin(alert(), "default", T0))
        await client.delete(f"{prefix}oncall:t:fp1")  # what a week's expiry does
        assert await store.due(T0, 10) == ["fp1"]
        assert await store.claim("fp1", None, T0, "r", T0 + 60) is None
        assert await store.due(T0, 10) == []
        assert await store.recent() == []
    finally:
        await client.aclose()
