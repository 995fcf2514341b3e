from __future__ import annotations

import asyncio
import threading

import pytest

from bot.state.memory.context import InMemoryContextStore
from intents import Context, Intent


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def ctx(service: str) -> Context:
    return Context(Intent.LOGS, {"service": service})


def test_expires_after_ttl() -> None:
    clock = Clock()
    store = InMemoryContextStore(ttl_s=900, clock=clock)
    store.put_now("+1", ctx("web"))
    clock.now += 899
    assert store.get_now("+1") == ctx("web")
    clock.now += 1
    assert store.get_now("+1") == Context()
    assert len(store) == 0


def test_writing_extends_the_expiry() -> None:
    clock = Clock()
    store = InMemoryContextStore(ttl_s=10, clock=clock)
    store.put_now("+1", ctx("web"))
    clock.now += 8
    store.put_now("+1", ctx("api"))
    clock.now += 8
    assert store.get_now("+1") == ctx("api")


def test_least_recently_written_user_goes_first() -> None:
    store = InMemoryContextStore(max_users=2)
    store.put_now("+1", ctx("web"))
    store.put_now("+2", ctx("api"))
    store.put_now("+1", ctx("cart"))
    store.put_now("+3", ctx("auth"))
    assert store.get_now("+2") == Context()
    assert store.get_now("+1") == ctx("cart")
    assert len(store) == 2


def test_expired_entries_are_swept_on_write() -> None:
    clock = Clock()
    store = InMemoryContextStore(ttl_s=5, clock=clock)
    for user in range(100):
        store.put_now(f"+{user}", ctx("web"))
    clock.now += 6
    store.put_now("+new", ctx("api"))
    assert len(store) == 1


def test_empty_context_is_not_kept() -> None:
    store = InMemoryContextStore()
    store.put_now("+1", ctx("web"))
    store.put_now("+1", Context())
    assert len(store) == 0


def test_users_are_separate_and_clear_works() -> None:
    store = InMemoryContextStore()

    async def scenario() -> None:
        await store.put("+1", ctx("web"))
        await store.put("+2", ctx("api"))
        await store.clear("+1")
        assert await store.get("+1") == Context()
        assert await store.get("+2") == ctx("api")

    asyncio.run(scenario())


def test_bad_bounds_are_refused() -> None:
    with pytest.raises(ValueError):
        InMemoryContextStore(ttl_s=0)
    with pytest.raises(ValueError):
        InMemoryContextStore(max_users=0)


def test_safe_under_concurrent_threads() -> None:
    store = InMemoryContextStore(max_users=50)
    errors: list[BaseException] = []

    def hammer(worker: int) -> None:
        try:
            for i in range(2000):
                user = f"+{(worker * 7 + i) % 80}"
                store.put_now(user, ctx(str(i)))
                store.get_now(user)
        except BaseException as exc:  # noqa: BLE001 - any error in a thread fails the test
            errors.append(exc)

    threads = [threading.Thread(target=hammer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(store) <= 50
