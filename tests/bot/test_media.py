from __future__ import annotations

import secrets

import pytest

from bot.charts.media import TOKEN_PATTERN, media_url, new_token, valid_token
from bot.state.memory.media import InMemoryMediaStore

pytestmark = pytest.mark.anyio

PNG = b"\x89PNG\r\n\x1a\n" + b"x" * 100


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_put_then_get_returns_the_bytes_and_type() -> None:
    store = InMemoryMediaStore(ttl_s=900)
    token = await store.put(PNG)
    other = await store.put(b"GIF89a...", "image/gif")
    assert valid_token(token) and token != other
    assert await store.get(token) == (PNG, "image/png")
    assert await store.get(other) == (b"GIF89a...", "image/gif")
    assert await store.get(token) == (PNG, "image/png")  # Twilio may fetch twice; only the TTL ends it


async def test_unknown_and_malformed_tokens_get_none() -> None:
    store = InMemoryMediaStore(ttl_s=900)
    await store.put(PNG)
    assert await store.get(new_token()) is None
    assert await store.get("../../etc/passwd") is None
    assert await store.get("") is None


async def test_items_expire_after_the_ttl() -> None:
    clock = Clock()
    store = InMemoryMediaStore(ttl_s=60, clock=clock)
    first = await store.put(PNG)
    clock.now += 30
    second = await store.put(PNG + b"2")
    clock.now += 29.9
    assert await store.get(first) is not None
    clock.now += 0.1  # 60 s after the first put
    assert await store.get(first) is None
    assert await store.get(second) is not None
    clock.now += 30
    assert await store.get(second) is None
    assert len(store) == 0 and store.size_bytes == 0


async def test_expired_items_are_dropped_on_put_even_if_never_fetched() -> None:
    clock = Clock()
    store = InMemoryMediaStore(ttl_s=10, clock=clock)
    for _ in range(5):
        await store.put(PNG)
    clock.now += 11
    await store.put(PNG)
    assert len(store) == 1 and store.size_bytes == len(PNG)


async def test_over_the_byte_bound_the_oldest_go_first() -> None:
    store = InMemoryMediaStore(ttl_s=900, max_bytes=1000)
    tokens = [await store.put(bytes([n]) * 300) for n in range(1, 4)]  # 900 bytes
    assert all([await store.get(token) for token in tokens])
    newest = await store.put(b"\xff" * 300)  # 1200 > 1000: the oldest goes
    assert await store.get(tokens[0]) is None
    assert [await store.get(token) for token in tokens[1:]] == [(bytes([n]) * 300, "image/png") for n in (2, 3)]
    assert await store.get(newest) == (b"\xff" * 300, "image/png")
    assert store.size_bytes == 900
    big = await store.put(b"b" * 1000)  # exactly the bound: everything else goes
    assert len(store) == 1 and await store.get(big) is not None


async def test_the_item_count_is_bounded_too() -> None:
    store = InMemoryMediaStore(ttl_s=900, max_items=3)
    tokens = [await store.put(b"%d" % n) for n in range(5)]
    assert len(store) == 3
    assert [await store.get(token) is not None for token in tokens] == [False, False, True, True, True]


async def test_an_item_larger_than_the_store_is_refused_and_nothing_is_evicted() -> None:
    store = InMemoryMediaStore(ttl_s=900, max_bytes=1000)
    kept = await store.put(PNG)
    with pytest.raises(ValueError, match="over"):
        await store.put(b"x" * 1001)
    assert await store.get(kept) == (PNG, "image/png")


@pytest.mark.parametrize(("data", "content_type"), [(b"", "image/png"), (PNG, "text/html"), (PNG, "image/svg+xml")])
async def test_empty_media_and_other_types_are_refused(data: bytes, content_type: str) -> None:
    store = InMemoryMediaStore(ttl_s=900)
    with pytest.raises(ValueError):
        await store.put(data, content_type)
    assert len(store) == 0


@pytest.mark.parametrize("arguments", [{"ttl_s": 0}, {"ttl_s": 1, "max_bytes": 0}, {"ttl_s": 1, "max_items": 0}])
def test_store_bounds_must_be_positive(arguments: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        InMemoryMediaStore(**arguments)  # type: ignore[arg-type]


def test_tokens_are_unique_and_match_the_pattern() -> None:
    tokens = [new_token() for _ in range(10_000)]
    assert len(set(tokens)) == len(tokens)
    assert all(TOKEN_PATTERN.fullmatch(token) for token in tokens)
    assert all(valid_token(token) for token in tokens)
    # 43 characters of a 64-letter alphabet: 258 bits of which 256 are random
    assert {len(token) for token in tokens} == {43}
    assert len(set("".join(tokens))) == 64


GOOD = secrets.token_urlsafe(32)


@pytest.mark.parametrize(
    "token",
    [
        pytest.param("", id="empty"),
        pytest.param("../" * 14 + "a", id="path-traversal"),
        pytest.param("..%2F..%2Fetc%2Fpasswd" + "a" * 21, id="encoded-traversal"),
        pytest.param(GOOD + ".png", id="png-suffix"),
        pytest.param(GOOD[:-1], id="one-short"),
        pytest.param(GOOD + "A", id="one-long"),
        pytest.param("A" * 10_000, id="huge"),
        pytest.param(GOOD[:-1] + "=", id="padding"),
        pytest.param(GOOD[:-1] + "+", id="standard-base64"),
        pytest.param(GOOD[:-1] + "/", id="slash"),
        pytest.param(GOOD[:-1] + "é", id="non-ascii"),
        pytest.param(GOOD[:-1] + "٣", id="arabic-digit"),
        pytest.param(GOOD + "\n", id="trailing-newline"),
        pytest.param(" " + GOOD[1:], id="space"),
        pytest.param(GOOD[:-1] + "\x00", id="nul"),
    ],
)
def test_valid_token_refuses_anything_new_token_cannot_make(token: str) -> None:
    assert not valid_token(token)


@pytest.mark.parametrize("value", [None, 42, b"x" * 43, ["a" * 43]])
def test_valid_token_refuses_non_strings(value: object) -> None:
    assert not valid_token(value)


def test_media_url_joins_the_public_url_once() -> None:
    token = new_token()
    assert media_url("https://ops.example.com", token) == f"https://ops.example.com/media/{token}.png"
    assert media_url("https://ops.example.com/", token) == f"https://ops.example.com/media/{token}.png"
    assert media_url("https://ops.example.com/bot//", token) == f"https://ops.example.com/bot/media/{token}.png"
