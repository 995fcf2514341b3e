"""Outbound messages through Twilio's REST API, with respx standing in for Twilio on the shared client.

The answers are written from Twilio's API reference: the Message resource a create returns
(https://www.twilio.com/docs/messaging/api/message-resource#create-a-message-resource) and its
error body (https://www.twilio.com/docs/usage/twilios-response#response-formats-exceptions).
A hung loopback server checks the timeouts for real.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import random
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import FrozenInstanceError, dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from bot.settings import ConfigError, load_settings
from bot.sms.outbound import (
    Delivery,
    Sender,
    TwilioSender,
    build_sender,
    parse_retry_after,
    safe_text,
    sender_unavailable,
)
from bot.sms.twilio_http import HttpxTwilioHttpClient
from monitors.http import new_client
from tests.servers import FaultServer, refused_url

pytestmark = pytest.mark.anyio

SID = "AC" + "0123456789abcdef" * 2
TOKEN = "auth-token-5f4dcc3b5aa765d61d8327deb882cf99"
FROM = "+15557122661"
TO = "+15558675310"
MASKED_TO = "+1555***5310"
MESSAGE_SID = "SM" + "fedcba9876543210" * 2
TWILIO = "https://api.twilio.com"
FAKE = "http://twilio-fake.test:8080/twilio"


def messages_url(base: str = TWILIO) -> str:
    return f"{base}/2010-04-01/Accounts/{SID}/Messages.json"


def created(body: str = "Working on it…", status: str = "queued", num_media: str = "0") -> httpx.Response:
    """Twilio's 201 answer to a Messages create, in the shape of its API reference."""
    uri = f"/2010-04-01/Accounts/{SID}/Messages/{MESSAGE_SID}.json"
    return httpx.Response(
        201,
        json={
            "account_sid": SID, "api_version": "2010-04-01", "body": body,
            "date_created": "Thu, 24 Aug 2023 05:01:45 +0000", "date_sent": None,
            "date_updated": "Thu, 24 Aug 2023 05:01:45 +0000", "direction": "outbound-api",
            "error_code": None, "error_message": None, "from": FROM, "messaging_service_sid": None,
            "num_media": num_media, "num_segments": "1", "price": None, "price_unit": "USD",
            "sid": MESSAGE_SID, "status": status,
            "subresource_uris": {"media": uri.replace(".json", "/Media.json")}, "to": TO, "uri": uri,
        },
    )  # fmt: skip


def twilio_error(status: int, code: int, message: str, headers: dict[str, str] | None = None) -> httpx.Response:
    """Twilio's error body (the legacy shape every Messages error still uses)."""
    return httpx.Response(
        status,
        json={"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}",
              "status": status},
        headers=headers,
    )  # fmt: skip


INVALID_TO = twilio_error(400, 21211, f"The 'To' number {TO} is not a valid phone number.")


@dataclass
class Sleeps:
    """Stands in for `asyncio.sleep`: keeps the delays asked for and yields without waiting."""

    delays: list[float] = field(default_factory=list)

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        await asyncio.sleep(0)


@pytest.fixture
async def client() -> Any:
    async with new_client() as shared:
        yield shared


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def sender(client: httpx.AsyncClient, sleeps: Sleeps, **options: Any) -> TwilioSender:
    return TwilioSender(SID, TOKEN, FROM, client, sleep=sleeps, rng=random.Random(7), **options)


def form(request: httpx.Request) -> dict[str, list[str]]:
    return urllib.parse.parse_qs(request.content.decode(), keep_blank_values=True)


# --- the request Twilio receives --------------------------------------------------------------


async def test_the_request_twilio_receives(
    respx_mock: respx.MockRouter, client: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    route = respx_mock.post(messages_url()).mock(return_value=created(num_media="2"))
    media = ["https://operator.example/graphs/a.png", "https://operator.example/graphs/b.png"]

    delivery = await sender(client, sleeps).send(TO, "Working on it…", media)

    assert delivery == Delivery(MASKED_TO, MESSAGE_SID, "queued", 1)
    assert delivery.ok and sleeps.delays == []
    request = route.calls.last.request
    assert request.method == "POST" and str(request.url) == messages_url()
    assert form(request) == {"To": [TO], "From": [FROM], "Body": ["Working on it…"], "MediaUrl": media}
    assert request.headers["authorization"] == "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert request.headers["accept"] == "application/json"
    assert request.headers["user-agent"].startswith("twilio-python/")


async def test_a_text_without_media_sends_no_media_url_and_the_body_as_given(
    respx_mock: respx.MockRouter, client: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    body = "Payment: 3 errors (15m)\n1/2 reply MORE & see — ünïcode 🚨"
    route = respx_mock.post(messages_url()).mock(return_value=created(body))
    assert (await sender(client, sleeps).send(TO, body)).ok
    assert form(route.calls.last.request) == {"To": [TO], "From": [FROM], "Body": [body]}


async def test_requests_go_through_the_client_it_is_given(sleeps: Sleeps) -> None:
    seen: list[httpx.Request] = []

    def twilio(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return created()

    async with httpx.AsyncClient(transport=httpx.MockTransport(twilio)) as shared:
        outbound = sender(shared, sleeps)
        deliveries = [await outbound.send(TO, f"page {n}") for n in (1, 2, 3)]
    assert [d.sid for d in deliveries] == [MESSAGE_SID] * 3
    assert [form(r)["Body"] for r in seen] == [["page 1"], ["page 2"], ["page 3"]]


@pytest.mark.parametrize(
    "status",
    [pytest.param("accepted", id="messaging-service"), pytest.param("scheduled", id="scheduled")],
)
async def test_the_delivery_carries_twilios_status(
    respx_mock: respx.MockRouter, client: httpx.AsyncClient, sleeps: Sleeps, status: str
) -> None:
    respx_mock.post(messages_url()).mock(return_value=created(status=status))
    assert (await sender(client, sleeps).send(TO, "hi")).status == status


def test_a_delivery_is_a_value() -> None:
    delivery = Delivery(MASKED_TO, MESSAGE_SID, "queued", 1)
    with pytest.raises(FrozenInstanceError):
        delivery.status = "sent"  # type: ignore[misc]


# --- TWILIO_API_BASE_URL ----------------------------------------------------------------------


async def test_the_base_url_override_takes_every_request(
    respx_mock: respx.MockRouter, client: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    """respx refuses any request no route matches, so one sent to api.twilio.com would fail here."""
    route = respx_mock.post(messages_url(FAKE)).mock(
        side_effect=[twilio_error(503, 20503, "down"), created(), created()]
    )
    outbound = sender(client, sleeps, base_url=FAKE + "/")
    assert (await outbound.send(TO, "one")).attempts == 2
    assert (await outbound.send(TO, "two")).ok
    assert [str(call.request.url) for call in route.calls] == [messages_url(FAKE)] * 3


@pytest.mark.parametrize(
    ("base_url", "uri", "expected"),
    [
        pytest.param(None, messages_url(), messages_url(), id="no-override"),
        pytest.param(TWILIO, messages_url(), messages_url(), id="override-is-twilio-itself"),
        pytest.param(FAKE, messages_url(), messages_url(FAKE), id="override-with-path-prefix"),
        pytest.param("http://127.0.0.1:9999/", messages_url(), messages_url("http://127.0.0.1:9999"), id="trailing-slash"),
        pytest.param(FAKE, f"{TWILIO}/2010-04-01/Accounts/{SID}/Messages.json?PageSize=5",
                     f"{FAKE}/2010-04-01/Accounts/{SID}/Messages.json?PageSize=5", id="query-kept"),
        pytest.param(FAKE, "https://messaging.twilio.com/v1/Services", f"{FAKE}/v1/Services", id="other-twilio-domain"),
        pytest.param(FAKE, "https://api.us1.twilio.com/2010-04-01/x", f"{FAKE}/2010-04-01/x", id="regional-host"),
        pytest.param(FAKE, "https://example.com/2010-04-01/x", "https://example.com/2010-04-01/x", id="not-twilio"),
        pytest.param(FAKE, "https://eviltwilio.com/x", "https://eviltwilio.com/x", id="lookalike-host"),
    ],
)  # fmt: skip
async def test_twilio_uris_are_rebased(
    client: httpx.AsyncClient, base_url: str | None, uri: str, expected: str
) -> None:
    assert HttpxTwilioHttpClient(client, base_url).url_for(uri) == expected


# --- retries ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answers", "attempts", "delays"),
    [
        pytest.param([twilio_error(500, 20500, "Internal Server Error")] * 2 + [created()], 3, [(0.5, 0.75), (1.0, 1.5)],
                     id="500-500-201"),
        pytest.param([httpx.Response(502, text="<html>Bad Gateway</html>"), created()], 2, [(0.5, 0.75)],
                     id="502-html-201"),
        pytest.param([twilio_error(429, 20429, "Too Many Requests", {"Retry-After": "2"}), created()], 2, [(2.0, 2.25)],
                     id="429-retry-after-honoured"),
        pytest.param([twilio_error(429, 20429, "Too Many Requests"), created()], 2, [(0.5, 0.75)],
                     id="429-without-retry-after-backs-off"),
        pytest.param([twilio_error(503, 20503, "Service Unavailable", {"Retry-After": "1"}), created()], 2,
                     [(1.0, 1.25)], id="503-retry-after-honoured"),
        pytest.param([httpx.ConnectError("refused"), created()], 2, [(0.5, 0.75)], id="connection-error"),
        pytest.param([httpx.ReadTimeout("slow"), created()], 2, [(0.5, 0.75)], id="read-timeout"),
        pytest.param([httpx.RemoteProtocolError("dropped"), created()], 2, [(0.5, 0.75)], id="dropped"),
    ],
)  # fmt: skip
async def test_passing_failures_are_retried_with_backoff(
    respx_mock: respx.MockRouter,
    client: httpx.AsyncClient,
    sleeps: Sleeps,
    answers: list[Any],
    attempts: int,
    delays: list[tuple[float, float]],
) -> None:
    route = respx_mock.post(messages_url()).mock(side_effect=answers)
    delivery = await sender(client, sleeps).send(TO, "late result")
    assert delivery == Delivery(MASKED_TO, MESSAGE_SID, "queued", attempts)
    assert route.call_count == attempts
    assert len(sleeps.delays) == len(delays)
    for delay, (low, high) in zip(sleeps.delays, delays, strict=True):
        assert low <= delay <= high


async def test_a_retry_after_date_is_honoured(
    respx_mock: respx.MockRouter, client: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=5), usegmt=True)
    respx_mock.post(messages_url()).mock(
        side_effect=[twilio_error(429, 20429, "Too Many Requests", {"Retry-After": when}), created()]
    )
    assert (await sender(client, sleeps).send(TO, "x")).ok
    assert 3.0 <= sleeps.delays[0] <= 5.25


async def test_a_retry_after_beyond_max_delay_fails_at_once(
    respx_mock: respx.MockRouter, client: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    route = respx_mock.post(messages_url()).mock(
        return_value=twilio_error(429, 20429, "Too Many Requests", {"Retry-After": "3600"})
    )
    delivery = await sender(client, sleeps, max_delay_s=30).send(TO, "x")
    assert delivery == Delivery(MASKED_TO, None, "failed", 1, "rate limited by Twilio (error 20429)", 20429)
    assert route.call_count == 1 and sleeps.delays == []


async def test_backoff_grows_and_is_capped(
    respx_mock: respx.MockRouter, client: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    respx_mock.post(messages_url()).mock(return_value=twilio_error(500, 20500, "Internal Server Error"))
    delivery = await sender(client, sleeps, max_attempts=6, backoff_s=1.0, max_delay_s=5.0).send(TO, "x")
    assert delivery.attempts == 6 and not delivery.ok
    low = [1.0, 2.0, 4.0, 5.0, 5.0]
    assert all(lo <= d <= min(lo * 1.5, 5.0) for d, lo in zip(sleeps.delays, low, strict=True)), sleeps.delays


async def test_concurrent_sends_each_honour_their_own_retry_after(
    respx_mock: respx.MockRouter, client: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    """Twilio's exceptions drop the headers; the adapter keeps them per task, so sends never mix them up."""
    waits = {"+15551230001": "1", "+15551230002": "7"}
    asked: dict[str, int] = {}

    async def twilio(request: httpx.Request) -> httpx.Response:
        to = form(request)["To"][0]
        asked[to] = asked.get(to, 0) + 1
        await asyncio.sleep(0.01)  # both requests in flight at once
        if asked[to] == 1:
            return twilio_error(429, 20429, "Too Many Requests", {"Retry-After": waits[to]})
        return created()

    respx_mock.post(messages_url()).mock(side_effect=twilio)
    outbound = sender(client, sleeps)
    first, second = await asyncio.gather(*(outbound.send(to, "alert") for to in waits))
    assert (first.attempts, second.attempts) == (2, 2)
    assert sorted(round(d) for d in sleeps.delays) == [1, 7]


# --- failures that are not retried, and giving up ---------------------------------------------


@pytest.mark.parametrize(
    ("answer", "error", "code"),
    [
        pytest.param(INVALID_TO, "Twilio error 21211: The 'To' number +1555***5310 is not a valid phone number.",
                     21211, id="21211-invalid-to"),
        pytest.param(twilio_error(400, 21610, "Attempt to send to unsubscribed recipient"),
                     "Twilio error 21610: Attempt to send to unsubscribed recipient", 21610, id="21610-unsubscribed"),
        pytest.param(twilio_error(401, 20003, "Authenticate"), "Twilio error 20003: Authenticate", 20003,
                     id="401-credentials"),
        pytest.param(httpx.Response(404, json={"type": "https://www.twilio.com/docs/errors/20404", "title": "Not Found",
                                               "status": 404, "code": 20404, "detail": f"No account {SID}"}),
                     "Twilio error 20404: No account <sid>", 20404, id="rfc9457-body"),
        pytest.param(httpx.Response(403, text="Forbidden"), "Twilio error 403", 403, id="no-json-body"),
    ],
)  # fmt: skip
async def test_refusals_are_not_retried_and_come_back_as_a_failed_delivery(
    respx_mock: respx.MockRouter, client: httpx.AsyncClient, sleeps: Sleeps, answer: httpx.Response, error: str,
    code: int,
) -> None:  # fmt: skip
    route = respx_mock.post(messages_url()).mock(return_value=answer)
    delivery = await sender(client, sleeps).send(TO, "x")
    assert delivery == Delivery(MASKED_TO, None, "failed", 1, error, code)
    assert not delivery.ok and route.call_count == 1 and sleeps.delays == []


@pytest.mark.parametrize(
    ("failure", "error", "code"),
    [
        pytest.param(twilio_error(500, 20500, "Internal Server Error"), "Twilio failed (HTTP 500)", 20500, id="500"),
        pytest.param(twilio_error(429, 20429, "Too Many Requests", {"Retry-After": "1"}),
                     "rate limited by Twilio (error 20429)", 20429, id="429"),
        pytest.param(httpx.ConnectError("[Errno 111] Connection refused"), "cannot connect to Twilio", None,
                     id="refused"),
        pytest.param(httpx.ReadTimeout("timed out"), "Twilio timed out after 10 s", None, id="timeout"),
    ],
)  # fmt: skip
async def test_gives_up_after_max_attempts(
    respx_mock: respx.MockRouter, client: httpx.AsyncClient, sleeps: Sleeps, failure: Any, error: str,
    code: int | None,
) -> None:  # fmt: skip
    route = respx_mock.post(messages_url()).mock(side_effect=[failure] * 4)
    delivery = await sender(client, sleeps, max_attempts=4).send(TO, "x")
    assert delivery == Delivery(MASKED_TO, None, "failed", 4, error, code)
    assert route.call_count == 4 and len(sleeps.delays) == 3


async def test_one_attempt_means_no_retry(
    respx_mock: respx.MockRouter, client: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    route = respx_mock.post(messages_url()).mock(return_value=twilio_error(503, 20503, "Service Unavailable"))
    assert (await sender(client, sleeps, max_attempts=1).send(TO, "x")).attempts == 1
    assert route.call_count == 1 and sleeps.delays == []


@pytest.mark.parametrize(
    ("answer", "status", "error"),
    [
        pytest.param(httpx.Response(201, text="<html>ok</html>"), "unknown", "unreadable answer from Twilio (HTTP 201)",
                     id="2xx-not-json"),
        pytest.param(httpx.Response(201, content=b"{" + b" " * 300_000 + b"}"), "failed", "answer from Twilio too large",
                     id="too-large"),
    ],
)  # fmt: skip
async def test_an_unusable_answer_is_not_retried(
    respx_mock: respx.MockRouter, client: httpx.AsyncClient, sleeps: Sleeps, answer: httpx.Response, status: str,
    error: str,
) -> None:  # fmt: skip
    """A 2xx may mean Twilio queued the message, so sending again could page twice."""
    route = respx_mock.post(messages_url()).mock(return_value=answer)
    delivery = await sender(client, sleeps).send(TO, "x")
    assert (delivery.status, delivery.error, delivery.sid, delivery.attempts) == (status, error, None, 1)
    assert route.call_count == 1


# --- timeouts, for real -----------------------------------------------------------------------


@pytest.fixture
def hung_twilio() -> Iterator[FaultServer]:
    server = FaultServer()
    server.hang(seconds=3.0)
    yield server
    server.stop()


async def test_a_hung_twilio_costs_at_most_the_timeouts(hung_twilio: FaultServer, client: httpx.AsyncClient) -> None:
    outbound = TwilioSender(SID, TOKEN, FROM, client, base_url=hung_twilio.url, max_attempts=2, backoff_s=0.05,
                            timeout_s=0.3)  # fmt: skip
    started = time.monotonic()
    delivery = await outbound.send(TO, "x")
    elapsed = time.monotonic() - started
    assert delivery == Delivery(MASKED_TO, None, "failed", 2, "Twilio timed out after 0.3 s")
    assert 0.6 <= elapsed < 1.5
    assert hung_twilio.behaviour.seen == [f"/2010-04-01/Accounts/{SID}/Messages.json"] * 2


async def test_nothing_listening_is_a_failed_delivery(client: httpx.AsyncClient, sleeps: Sleeps) -> None:
    delivery = await sender(client, sleeps, base_url=refused_url(), max_attempts=2).send(TO, "x")
    assert (delivery.status, delivery.error, delivery.attempts) == ("failed", "cannot connect to Twilio", 2)


async def test_every_request_carries_the_timeout(
    respx_mock: respx.MockRouter, client: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    route = respx_mock.post(messages_url()).mock(return_value=created())
    await sender(client, sleeps, timeout_s=4.0).send(TO, "x")
    assert route.calls.last.request.extensions["timeout"] == {"connect": 4.0, "read": 4.0, "write": 4.0, "pool": 4.0}


@pytest.mark.parametrize(
    "options",
    [pytest.param({"max_attempts": 0}, id="no-attempts"), pytest.param({"backoff_s": -1}, id="negative-backoff"),
     pytest.param({"timeout_s": 0}, id="zero-timeout")],
)  # fmt: skip
async def test_nonsense_options_are_refused(client: httpx.AsyncClient, options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        TwilioSender(SID, TOKEN, FROM, client, **options)


# --- what never leaks -------------------------------------------------------------------------


async def test_logs_and_deliveries_never_hold_the_token_or_a_full_number(
    respx_mock: respx.MockRouter, client: httpx.AsyncClient, sleeps: Sleeps, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    respx_mock.post(messages_url(FAKE)).mock(
        side_effect=[
            twilio_error(500, 20500, "Internal Server Error"), httpx.ConnectError(f"cannot reach {FAKE}"), created(),
            INVALID_TO,
            twilio_error(429, 20429, f"Too Many Requests for {SID} from {FROM}", {"Retry-After": "1"}),
            twilio_error(429, 20429, "Too Many Requests", {"Retry-After": "1"}),
            twilio_error(429, 20429, "Too Many Requests", {"Retry-After": "1"}),
        ]
    )  # fmt: skip
    outbound = sender(client, sleeps, base_url=FAKE)
    deliveries = [await outbound.send(TO, "first"), await outbound.send(TO, "second"), await outbound.send(TO, "third")]

    assert [d.ok for d in deliveries] == [True, False, False]
    everything = caplog.text + repr(deliveries) + repr(outbound)
    for secret in (TOKEN, TO, FROM):
        assert secret not in everything, secret
    # httpx itself logs each request's URL at INFO (the logging set-up quiets it); ours never names
    # the account or where requests go.
    ours = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith(("httpx", "httpcore")))
    for secret in (SID, FAKE, "twilio-fake.test", "twilio.com/docs"):
        assert secret not in ours + repr(deliveries) + repr(outbound), secret
    assert MASKED_TO in caplog.text and MESSAGE_SID in caplog.text
    assert not any(record.exc_info for record in caplog.records)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("The 'To' number +15558675310 is not a valid phone number.",
                     "The 'To' number +1555***5310 is not a valid phone number.", id="number"),
        pytest.param("see https://www.twilio.com/docs/errors/21211 now", "see <url> now", id="url"),
        pytest.param(f"account {SID} suspended", "account <sid> suspended", id="account-sid"),
        pytest.param("line\none\t two", "line one two", id="whitespace"),
        pytest.param("x" * 150, "x" * 99 + "…", id="truncated"),
    ],
)  # fmt: skip
def test_safe_text(text: str, expected: str) -> None:
    assert safe_text(text) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(None, None, id="absent"),
        pytest.param("5", 5.0, id="seconds"),
        pytest.param(" 12 ", 12.0, id="padded"),
        pytest.param("Wed, 21 Oct 2015 07:28:10 GMT", 10.0, id="http-date"),
        pytest.param("Wed, 21 Oct 2015 07:27:00 GMT", 0.0, id="date-in-the-past"),
        pytest.param("soon", None, id="garbage"),
        pytest.param("-3", None, id="negative"),
        pytest.param("1.5", None, id="fraction-not-allowed-by-rfc"),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    now = datetime(2015, 10, 21, 7, 28, 0, tzinfo=UTC).timestamp()
    assert parse_retry_after(value, now=lambda: now) == expected


# --- building from settings -------------------------------------------------------------------

FULL_ENV = {"TWILIO_ACCOUNT_SID": SID, "TWILIO_AUTH_TOKEN": TOKEN, "TWILIO_FROM_NUMBER": FROM}


@pytest.mark.parametrize(
    ("environ", "reason"),
    [
        pytest.param({}, "outbound SMS disabled: TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_FROM_NUMBER not set",
                     id="nothing"),
        pytest.param({**FULL_ENV, "TWILIO_AUTH_TOKEN": ""}, "outbound SMS disabled: TWILIO_AUTH_TOKEN not set",
                     id="empty-token"),
        pytest.param({k: v for k, v in FULL_ENV.items() if k != "TWILIO_FROM_NUMBER"},
                     "outbound SMS disabled: TWILIO_FROM_NUMBER not set", id="no-from"),
        pytest.param({**FULL_ENV, "TWILIO_API_BASE_URL": "twilio-fake:8080"},
                     "outbound SMS disabled: TWILIO_API_BASE_URL is not an http(s) URL", id="bad-base-url"),
    ],
)  # fmt: skip
async def test_no_sender_without_what_it_needs(client: httpx.AsyncClient, environ: dict[str, str], reason: str) -> None:
    settings = load_settings(environ=environ, env_file=None)
    assert sender_unavailable(settings) == reason
    assert build_sender(settings, client) is None
    assert TOKEN not in reason and SID not in reason


async def test_the_sender_built_from_settings_uses_them(
    respx_mock: respx.MockRouter, client: httpx.AsyncClient
) -> None:
    settings = load_settings(environ={**FULL_ENV, "TWILIO_API_BASE_URL": FAKE}, env_file=None)
    assert sender_unavailable(settings) is None
    outbound: Sender | None = build_sender(settings, client)
    assert isinstance(outbound, TwilioSender)
    route = respx_mock.post(messages_url(FAKE)).mock(return_value=created())
    assert await outbound.send(TO, "hello") == Delivery(MASKED_TO, MESSAGE_SID, "queued", 1)
    request = route.calls.last.request
    assert form(request)["From"] == [FROM]
    assert request.headers["authorization"] == "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()


async def test_the_default_base_url_is_twilio(respx_mock: respx.MockRouter, client: httpx.AsyncClient) -> None:
    outbound = build_sender(load_settings(environ=FULL_ENV, env_file=None), client)
    assert outbound is not None
    route = respx_mock.post(messages_url()).mock(return_value=created())
    assert (await outbound.send(TO, "hello")).ok and route.called


# --- TWILIO_MESSAGING_SERVICE_SID -------------------------------------------------------------

SERVICE_SID = "MG" + "9752274e9e519418a7406176694466fa"
TWILIO_FIXTURES = Path(__file__).parent.parent / "fixtures" / "twilio"


def created_by_service(name: str = "messages_create_messaging_service_response.json") -> httpx.Response:
    """Twilio's answer to a create through a Messaging Service: `from` null, `messaging_service_sid`
    set (the docs' example, status accepted, or twilio-python's test, status sent; see SOURCES.md)."""
    body = (TWILIO_FIXTURES / name).read_bytes()
    return httpx.Response(201, content=body, headers={"content-type": "application/json"})


@pytest.mark.parametrize(
    ("fixture", "sid", "status"),
    [
        pytest.param("messages_create_messaging_service_response.json", "SM18c9444687c240caa8b54dc9a22e14d8",
                     "accepted", id="docs"),
        pytest.param("messages_create_messaging_service_response_twilio_python.json", "SM" + "a" * 32, "sent",
                     id="twilio-python"),
    ],
)  # fmt: skip
async def test_a_messaging_service_sends_without_a_from_number(
    respx_mock: respx.MockRouter, client: httpx.AsyncClient, sleeps: Sleeps, fixture: str, sid: str, status: str
) -> None:
    route = respx_mock.post(messages_url()).mock(return_value=created_by_service(fixture))
    outbound = TwilioSender(SID, TOKEN, None, client, messaging_service_sid=SERVICE_SID, sleep=sleeps)

    delivery = await outbound.send(TO, "Working on it…", ["https://operator.example/graphs/a.png"])

    assert delivery == Delivery(MASKED_TO, sid, status, 1)
    assert form(route.calls.last.request) == {
        "To": [TO], "MessagingServiceSid": [SERVICE_SID], "Body": ["Working on it…"],
        "MediaUrl": ["https://operator.example/graphs/a.png"],
    }  # fmt: skip


async def test_the_service_wins_over_a_from_number_and_never_shows(
    respx_mock: respx.MockRouter, client: httpx.AsyncClient, sleeps: Sleeps, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    route = respx_mock.post(messages_url()).mock(side_effect=[twilio_error(500, 20500, "Internal Server Error"),
                                                              created_by_service()])  # fmt: skip
    outbound = sender(client, sleeps, messaging_service_sid=SERVICE_SID)
    assert (await outbound.send(TO, "alert")).attempts == 2
    for call in route.calls:
        sent = form(call.request)
        assert sent["MessagingServiceSid"] == [SERVICE_SID] and "From" not in sent
    assert repr(outbound) == "TwilioSender(via=messaging service)"
    ours = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith(("httpx", "httpcore")))
    assert SERVICE_SID not in ours + repr(outbound) and TO not in ours


async def test_a_sender_needs_a_number_or_a_service(client: httpx.AsyncClient) -> None:
    with pytest.raises(ValueError):
        TwilioSender(SID, TOKEN, None, client)
    with pytest.raises(ValueError):
        TwilioSender(SID, TOKEN, "", client, messaging_service_sid="")


@pytest.mark.parametrize(
    ("environ", "fields"),
    [
        pytest.param({**FULL_ENV, "TWILIO_FROM_NUMBER": "", "TWILIO_MESSAGING_SERVICE_SID": SERVICE_SID},
                     {"MessagingServiceSid": [SERVICE_SID]}, id="service-only"),
        pytest.param({**FULL_ENV, "TWILIO_MESSAGING_SERVICE_SID": f" {SERVICE_SID} "},
                     {"MessagingServiceSid": [SERVICE_SID]}, id="both-service-wins"),
        pytest.param({**FULL_ENV, "TWILIO_MESSAGING_SERVICE_SID": "  "}, {"From": [FROM]}, id="blank-service"),
    ],
)  # fmt: skip
async def test_settings_are_valid_with_either_sender(
    respx_mock: respx.MockRouter, client: httpx.AsyncClient, environ: dict[str, str], fields: dict[str, list[str]]
) -> None:
    settings = load_settings(environ=environ, env_file=None)
    assert sender_unavailable(settings) is None
    outbound = build_sender(settings, client)
    assert outbound is not None
    route = respx_mock.post(messages_url()).mock(return_value=created_by_service())
    assert (await outbound.send(TO, "hello")).ok
    sent = form(route.calls.last.request)
    assert {key: sent[key] for key in ("From", "MessagingServiceSid") if key in sent} == fields


async def test_without_a_number_or_a_service_outbound_is_off(client: httpx.AsyncClient) -> None:
    settings = load_settings(environ={**FULL_ENV, "TWILIO_FROM_NUMBER": ""}, env_file=None)
    assert sender_unavailable(settings) == "outbound SMS disabled: TWILIO_FROM_NUMBER not set"
    assert build_sender(settings, client) is None


def test_the_service_sid_is_read_from_the_environment_only(tmp_path: Path) -> None:
    config = tmp_path / "operator.yaml"
    config.write_text(f"twilio_messaging_service_sid: {SERVICE_SID}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(config, environ={}, env_file=None)
    assert SERVICE_SID not in str(caught.value)
    settings = load_settings(environ={"TWILIO_MESSAGING_SERVICE_SID": SERVICE_SID}, env_file=None)
    assert SERVICE_SID not in repr(settings)
