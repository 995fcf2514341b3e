"""`graph` end to end: a real Prometheus scraping an exporter the test drives, the whole bot on loopback, the
chart sent as MMS (TwiML <Media>) at an unguessable, expiring URL that serves a PNG whose line follows the data;
the text fallback where MMS is off; the Redis media store for several instances."""

from __future__ import annotations

import asyncio
import io
import secrets
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import respx
from PIL import Image

from bot.charts.media import new_token
from bot.charts.scales import PALETTE
from bot.state.protocols import StoreUnavailable
from bot.state.redis.client import redis_client
from bot.state.redis.media import RedisMediaStore
from bot.web.twiml import twiml
from tests.bot.appserver import (
    ALICE,
    BOB,
    PUBLIC_URL,
    TWILIO,
    bodies,
    message_of,
    mocked_twilio,
    serve,
    settings_for,
    until,
)
from tests.bot.servers_redis import RedisServer, redis_server
from tests.servers import Exporter, PrometheusServer, refused_url

pytestmark = [pytest.mark.anyio, pytest.mark.servers]

METRICS = "metrics: {known: 'operator_test_known_value{service=\"{service}\"}'}\n"


def config(server: PrometheusServer, extra: str = "") -> str:
    return f"monitors: {{prometheus: {{url: '{server.url}'}}}}\n{METRICS}graph_width_px: 640\ngraph_height_px: 400\n{extra}"


def media_of(response_text: str) -> list[str]:
    return [m.text or "" for m in ElementTree.fromstring(response_text).iter("Media")]


def local(url: str, base: str) -> str:
    """The public media URL Twilio would fetch, pointed at the bot on loopback."""
    assert url.startswith(f"{PUBLIC_URL}/media/") and url.endswith(".png"), url
    return base + url.removeprefix(PUBLIC_URL)


def line_heights(png: bytes, colour: str) -> list[tuple[int, float]]:
    """(x, mean y) of the pixels in `colour` per column: where the chart's first line is drawn."""
    image = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    target = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])
    close = np.abs(image - target).sum(axis=2) < 60
    return [(x, float(np.nonzero(close[:, x])[0].mean())) for x in range(image.shape[1]) if close[:, x].any()]


@pytest.fixture(scope="module")
def stepped(watched: tuple[Exporter, PrometheusServer]) -> PrometheusServer:
    """Prometheus holding a series that was low for a while, then high: 10 then 90."""
    exporter, server = watched
    exporter.known.labels("checkout").set(10)
    time.sleep(6)
    exporter.known.labels("checkout").set(90)
    time.sleep(6)
    return server


async def test_a_graph_is_sent_as_a_picture_whose_line_follows_the_data(
    tmp_path: Path, stepped: PrometheusServer
) -> None:
    async with serve(settings_for(tmp_path, config(stepped))) as bot:
        response = await bot.text("graph known on checkout last 10 minutes")
        assert response.status_code == 200
        media = media_of(response.text)
        assert len(media) == 1
        assert "checkout" in message_of(response) and "90" in message_of(response)  # the numbers ride along
        fetched = await bot.client.get(local(media[0], bot.url))
        assert fetched.status_code == 200 and fetched.headers["content-type"] == "image/png"
        assert fetched.headers["cache-control"] == "no-store"
        image = Image.open(io.BytesIO(fetched.content))
        assert image.format == "PNG" and image.size == (640, 400)
        heights = line_heights(fetched.content, PALETTE[0])
        assert len(heights) > 100
        third = len(heights) // 3
        early = np.mean([y for _, y in heights[:third]])
        late = np.mean([y for _, y in heights[-third:]])
        assert late < early - 50  # 90 is drawn well above 10 (y grows downwards)

        viewer = await bot.text("graph known checkout 10m", number=BOB)  # reading is for everyone
        assert len(media_of(viewer.text)) == 1 and media_of(viewer.text) != media

        sloppy = await bot.text("can u show me a chart of checkout known, past 10 mins pls")  # free-form
        assert len(media_of(sloppy.text)) == 1 and "checkout" in message_of(sloppy)


async def test_media_urls_cannot_be_guessed_and_expire(tmp_path: Path, stepped: PrometheusServer) -> None:
    async with serve(settings_for(tmp_path, config(stepped, "media_ttl_s: 1.5\n"))) as bot:
        url = local(media_of((await bot.text("graph known checkout 10m")).text)[0], bot.url)
        token = url.rsplit("/", 1)[1].removesuffix(".png")
        assert len(token) == 43 and (await bot.client.get(url)).status_code == 200
        probes = [
            f"/media/{new_token()}.png",  # well formed, never issued
            f"/media/{token}",  # no suffix
            f"/media/{token}.jpg",
            f"/media/{token[:-1]}.png",
            f"/media/{token}x.png",
            "/media/..%2F..%2Fetc%2Fpasswd.png",
            "/media/" + "A" * 10_000 + ".png",
            f"/media/{token.upper() if token.upper() != token else token.lower()}.png",
        ]
        for probe in probes:
            answer = await bot.client.get(bot.url + probe)
            assert answer.status_code == 404 and not answer.content.startswith(b"\x89PNG"), probe
        await asyncio.sleep(2)
        assert (await bot.client.get(url)).status_code == 404  # expired


async def test_without_mms_the_chart_is_text(tmp_path: Path, stepped: PrometheusServer) -> None:
    async with serve(settings_for(tmp_path, config(stepped, "mms: false\n"))) as bot:
        response = await bot.text("graph known checkout 10m")
        assert media_of(response.text) == []
        reply = message_of(response)
        assert reply.startswith("checkout known, last 10m") and "max 90" in reply
        sparkline = reply.splitlines()[1]
        assert set(sparkline) <= set("_.-*' ") and sparkline.rstrip()[-1] == "'"  # ends at the top: 90


async def test_a_backend_failure_is_one_line_and_no_picture(tmp_path: Path) -> None:
    failing = f"monitors: {{prometheus: {{url: '{refused_url()}'}}}}\n{METRICS}"
    async with serve(settings_for(tmp_path, failing)) as bot:
        response = await bot.text("graph known checkout 1h", number=ALICE)
        assert media_of(response.text) == []
        assert "Prometheus" in message_of(response) and "127.0.0.1" not in message_of(response)


async def test_a_slow_graph_follows_by_mms_through_the_rest_api(tmp_path: Path, stepped: PrometheusServer) -> None:
    with respx.mock(assert_all_called=False) as mock:
        twilio = mocked_twilio(mock)
        settings = settings_for(tmp_path, config(stepped, "reply_budget_s: 0.001\n"), TWILIO_API_BASE_URL=TWILIO)
        async with serve(settings) as bot:
            assert message_of(await bot.text("graph known checkout 10m")).startswith("Working on it")
            await until(lambda: twilio.called, 15)
            sent = bodies(twilio)[0]
            assert sent["To"] == ALICE and "checkout" in sent["Body"]
            fetched = await bot.client.get(local(sent["MediaUrl"], bot.url))
            assert fetched.status_code == 200 and fetched.content.startswith(b"\x89PNG")


def test_twiml_with_media_is_escaped_and_well_formed() -> None:
    xml = twiml("a < b & c", ["https://ops.example.com/media/x.png?a=1&b=2"])
    root = ElementTree.fromstring(xml)
    assert root.findtext("Message/Body") == "a < b & c"
    assert [m.text for m in root.iter("Media")] == ["https://ops.example.com/media/x.png?a=1&b=2"]
    assert twiml("", ["https://ops.example.com/media/x.png"]).count("<Media>") == 1  # a picture alone is sent
    assert twiml() == '<?xml version="1.0" encoding="UTF-8"?><Response />'


# --- the shared store ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


async def test_redis_media_store_round_trip_expiry_and_refusals(redis: RedisServer) -> None:
    client = redis_client(redis.url)
    try:
        store = RedisMediaStore(client, 0.5, max_bytes=1024, prefix="test-media:")
        png = b"\x89PNG\r\n\x1a\n" + secrets.token_bytes(500)
        token = await store.put(png)
        assert await store.get(token) == (png, "image/png")
        second = redis_client(redis.url)  # another instance
        try:
            assert await RedisMediaStore(second, 0.5, prefix="test-media:").get(token) == (png, "image/png")
        finally:
            await second.aclose()
        assert await store.get(new_token()) is None
        assert await store.get("../" + token) is None
        with pytest.raises(ValueError):
            await store.put(b"x" * 2048)
        with pytest.raises(ValueError):
            await store.put(b"<html>", "text/html")
        await client.set("test-media:" + (forged := new_token()), "image/png\nnot base64!")
        assert await store.get(forged) is None
        await asyncio.sleep(0.7)
        assert await store.get(token) is None
    finally:
        await client.aclose()


async def test_redis_media_store_down_is_store_unavailable(redis: RedisServer) -> None:
    client = redis_client(redis.url, timeout_s=0.5)
    store = RedisMediaStore(client, 60)
    redis.stop()
    try:
        with pytest.raises(StoreUnavailable):
            await store.put(b"\x89PNG")
        with pytest.raises(StoreUnavailable):
            await store.get(new_token())
    finally:
        redis.start()
        await client.aclose()
