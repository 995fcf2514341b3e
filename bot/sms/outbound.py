"""Messages we start ourselves (late results of slow commands, alerts), sent through Twilio's REST API, and
voice calls (on-call pages) through the same client.

A reply to a text rides back in the webhook's TwiML; anything later has to be pushed. That goes
through the official `twilio` client, so request shapes and error parsing stay Twilio's own, but
over the process's one shared `httpx.AsyncClient` (`bot.sms.twilio_http`): pooled connections,
bounded timeouts, one place tests intercept with respx, and `TWILIO_API_BASE_URL` honoured for
every request.

Failures never raise out of `TwilioSender.send`: the caller gets a `Delivery` saying what happened,
which it records and counts. The errors below are raised by the HTTP adapter (`bot.sms.twilio_http`) and turned into a
`Delivery` by the sender:

    OutboundError            Twilio could not be asked, or its answer could not be used
    ├── TwilioUnreachable    connection refused, dropped, or no answer in time (worth a retry)
    │   └── TwilioTimeout    no answer within the request timeout
    └── TwilioBadResponse    the answer was too large to be a message resource (not retried)

Nothing here puts the auth token, a full phone number, the account's URL or Twilio's raw error
text into a log line or a `Delivery`.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx
from twilio.base import values
from twilio.base.exceptions import (  # type: ignore[import-untyped, unused-ignore]
    TwilioRestException,
    TwilioServiceException,
)
from twilio.rest import Client

from bot.settings import Settings
from bot.sms.privacy import mask_number, redact_numbers
from bot.sms.twilio_http import DEFAULT_TIMEOUT_S, Captured, HttpxTwilioHttpClient, TwilioBadResponse, TwilioUnreachable

log = logging.getLogger(__name__)
RETRYABLE_STATUSES = frozenset({429}) | frozenset(range(500, 600))
"""Twilio asks us to slow down (429) or failed on its side (5xx); any other 4xx will fail again."""

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class Delivery:
    """What became of one outbound message, for the caller to record and count."""

    to: str
    """The recipient, masked (`+1555***0001`)."""
    sid: str | None
    """Twilio's Message SID (`SM…`) when Twilio accepted the message."""
    status: str
    """Twilio's status on acceptance (`queued`, `accepted`, `scheduled`…); `failed` when it was not
    accepted; `unknown` when Twilio answered 2xx with something unreadable (it may have been sent)."""
    attempts: int
    """Requests made, retries included."""
    error: str | None = None
    """Short, safe reason when not accepted: no full numbers, URLs or credentials."""
    code: int | None = None
    """Twilio's error code (21211 invalid To, 20429 too many requests…) or the HTTP status."""

    @property
    def ok(self) -> bool:
        return self.error is None


class Sender(Protocol):
    """Sends one message; never raises for a delivery failure, the `Delivery` says what happened."""

    async def send(self, to: str, body: str, media_urls: Sequence[str] = ()) -> Delivery: ...


class Caller(Protocol):
    """Starts one voice call; never raises for a failure, the `Delivery` says what happened."""

    async def call(self, to: str, url: str, status_callback: str | None = None) -> Delivery: ...


@dataclass(frozen=True)
class _Failure:
    reason: str
    retryable: bool
    code: int | None = None
    retry_after_s: float | None = None
    status: str = "failed"


class TwilioSender:
    """`Sender` through Twilio's REST API, with retries on 429, 5xx and network failures.

    Backoff doubles from `backoff_s` with up to 50 % jitter; a `Retry-After` is honoured instead,
    unless it asks for more than `max_delay_s`, in which case waiting would outlive the message's
    use and the send fails at once. Worst case, a send takes
    `max_attempts * timeout_s + (max_attempts - 1) * max_delay_s`.

    A read timeout or a dropped connection is retried too, although Twilio may have queued the
    message before the answer was lost (its Messages API has no idempotency key): a rare duplicate
    page beats a lost one.
    """

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        from_number: str | None,
        client: httpx.AsyncClient,
        base_url: str | None = None,
        max_attempts: int = 3,
        backoff_s: float = 0.5,
        *,
        messaging_service_sid: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_delay_s: float = 30.0,
        status_callback: str | None = None,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if backoff_s < 0 or max_delay_s < 0:
            raise ValueError("backoff_s and max_delay_s cannot be negative")
        if not from_number and not messaging_service_sid:
            raise ValueError("a from number or a messaging service SID is needed")
        self.from_number = from_number
        self.messaging_service_sid = messaging_service_sid
        """When set, Twilio picks the sender from the Messaging Service's pool (`MessagingServiceSid`, no `From`)."""
        self.status_callback = status_callback
        """Where Twilio reports delivered/failed (the bot's /twilio/status), when the public URL is known."""
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.max_delay_s = max_delay_s
        self.http = HttpxTwilioHttpClient(client, base_url, timeout_s)
        # An empty `environment` would fall back to os.environ (`environment or os.environ`); blank
        # edge and region keep Twilio from rewriting hosts from variables Settings never saw.
        self._twilio = Client(
            account_sid, auth_token, http_client=self.http, environment={"TWILIO_EDGE": "", "TWILIO_REGION": ""}
        )
        self._sleep = sleep
        self._rng = rng or random.Random()

    def __repr__(self) -> str:
        if self.messaging_service_sid:
            return "TwilioSender(via=messaging service)"
        return f"TwilioSender(from={mask_number(self.from_number or '')})"

    async def send(self, to: str, body: str, media_urls: Sequence[str] = ()) -> Delivery:
        """Send `body` (already folded and paged by the caller) to `to`, retrying what may pass next time."""

        async def create() -> Any:
            return await self._twilio.messages.create_async(
                to=to, body=body, media_url=list(media_urls) or values.unset,
                status_callback=self.status_callback or values.unset, **self._sender(),
            )  # fmt: skip

        return await self._deliver(to, create)

    async def call(self, to: str, url: str, status_callback: str | None = None) -> Delivery:
        """Ring `to`; Twilio fetches the call's TwiML from `url` (POST) when it is answered and reports how the
        call ended to `status_callback`. Retried like a text (a lost answer may mean a second call: better
        than none). The `Delivery`'s sid is the Call SID (`CA…`)."""

        async def create() -> Any:
            return await self._twilio.calls.create_async(
                to=to, from_=self.from_number, url=url, method="POST",
                status_callback=status_callback or values.unset, status_callback_method="POST",
            )  # fmt: skip

        return await self._deliver(to, create)

    async def _deliver(self, to: str, create: Callable[[], Awaitable[Any]]) -> Delivery:
        masked = mask_number(to)
        attempt = 0
        while True:
            attempt += 1
            outcome = await self._attempt(masked, create, attempt)
            if isinstance(outcome, Delivery):
                log.info("Twilio accepted %s for %s (%s) after %d attempt(s)", outcome.sid, masked, outcome.status,
                         attempt)  # fmt: skip
                return outcome
            delay = self._delay(attempt, outcome)
            if not outcome.retryable or attempt >= self.max_attempts or delay is None:
                log.warning("Twilio send to %s failed after %d attempt(s): %s", masked, attempt, outcome.reason)
                return Delivery(masked, None, outcome.status, attempt, outcome.reason, outcome.code)
            log.info("Twilio send to %s: %s; attempt %d of %d in %.2f s", masked, outcome.reason, attempt + 1,
                     self.max_attempts, delay)  # fmt: skip
            await self._sleep(delay)

    async def _attempt(self, masked: str, create: Callable[[], Awaitable[Any]], attempt: int) -> Delivery | _Failure:
        with self.http.capture() as captured:
            try:
                resource = await create()
            except TwilioRestException as exc:
                return _rest_failure(exc.status, exc.code, _twilio_text(exc.msg), captured)
            except TwilioServiceException as exc:
                return _rest_failure(exc.status, exc.code, str(exc.detail or exc.title or ""), captured)
            except TwilioUnreachable as exc:
                return _Failure(str(exc), retryable=True)
            except TwilioBadResponse as exc:
                return _Failure(str(exc), retryable=False)
            except json.JSONDecodeError:
                # A 2xx Twilio's client could not parse: the message may well be queued, so no retry.
                status = captured.responses[-1].status_code if captured.responses else None
                return _Failure(f"unreadable answer from Twilio (HTTP {status})", False, code=status, status="unknown")
        sid = resource.sid if isinstance(resource.sid, str) else None
        status = resource.status if isinstance(resource.status, str) else "queued"
        return Delivery(masked, sid, status, attempt)

    def _sender(self) -> dict[str, Any]:
        """Who the text comes from: the Messaging Service when one is set (its number pool, sticky
        sender and opt-out handling apply), else the one number."""
        if self.messaging_service_sid:
            return {"messaging_service_sid": self.messaging_service_sid}
        return {"from_": self.from_number}

    def _delay(self, attempt: int, failure: _Failure) -> float | None:
        """Seconds before the next attempt, or None when waiting that long is not worth it."""
        jitter = self._rng.uniform(0, 0.5)
        if failure.retry_after_s is not None:
            if failure.retry_after_s > self.max_delay_s:
                return None
            return failure.retry_after_s + jitter * self.backoff_s
        return min(self.backoff_s * 2.0 ** (attempt - 1) * (1 + jitter), self.max_delay_s)


def _rest_failure(status: int, code: Any, message: str, captured: Captured) -> _Failure:
    code = code if isinstance(code, int) and not isinstance(code, bool) else status
    text = safe_text(message)
    if status == 429:
        reason = f"rate limited by Twilio (error {code})"
    elif status >= 500:
        reason = f"Twilio failed (HTTP {status})"
    else:
        reason = f"Twilio error {code}" + (f": {text}" if text else "")
    retry_after = parse_retry_after(captured.header("retry-after"))
    return _Failure(reason, retryable=status in RETRYABLE_STATUSES, code=code, retry_after_s=retry_after)


def _twilio_text(msg: str) -> str:
    """Twilio's own message, without the client's "Unable to create record: " prefix."""
    return msg.split(": ", 1)[1] if msg.startswith("Unable to ") and ": " in msg else ""


_URL = re.compile(r"\b(?:https?|ftp)://\S+|\bwww\.\S+", re.IGNORECASE)
_SID = re.compile(r"\b[A-Z]{2}[0-9a-fA-F]{32}\b")


def safe_text(text: str, limit: int = 100) -> str:
    """An error text from Twilio fit for a log line: URLs and SIDs dropped, numbers masked, short."""
    text = redact_numbers(_SID.sub("<sid>", _URL.sub("<url>", text)))
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def parse_retry_after(value: str | None, now: Callable[[], float] = time.time) -> float | None:
    """Seconds from a `Retry-After` header, given in seconds or as an HTTP date; None if absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now())


def _credentials(settings: Settings) -> tuple[dict[str, str], list[str]]:
    """The Twilio settings that are set (stripped), and the variable names of those that are not.

    A sender is TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID: either will do, so only when
    neither is set is one missing (named as the usual one, the number)."""
    service = settings.twilio_messaging_service_sid
    given = {
        "TWILIO_ACCOUNT_SID": settings.twilio_account_sid.get_secret_value() if settings.twilio_account_sid else "",
        "TWILIO_AUTH_TOKEN": settings.twilio_auth_token.get_secret_value() if settings.twilio_auth_token else "",
        "TWILIO_FROM_NUMBER": settings.twilio_from_number or "",
        "TWILIO_MESSAGING_SERVICE_SID": service.get_secret_value() if service else "",
    }
    present = {name: value.strip() for name, value in given.items() if value.strip()}
    senders = ("TWILIO_FROM_NUMBER", "TWILIO_MESSAGING_SERVICE_SID")
    missing = [name for name in given if name not in present and name not in senders]
    if not any(name in present for name in senders):
        missing.append("TWILIO_FROM_NUMBER")
    return present, missing


def sender_unavailable(settings: Settings) -> str | None:
    """Why no message can be pushed with these settings (for /readyz), or None when one can."""
    _, missing = _credentials(settings)
    if missing:
        return f"outbound SMS disabled: {', '.join(missing)} not set"
    parts = urlsplit(settings.twilio_api_base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "outbound SMS disabled: TWILIO_API_BASE_URL is not an http(s) URL"
    return None


def build_sender(settings: Settings, client: httpx.AsyncClient) -> TwilioSender | None:
    """The Twilio sender for these settings, on the shared client; None when `sender_unavailable` says why."""
    if sender_unavailable(settings) is not None:
        return None
    present, _ = _credentials(settings)
    return TwilioSender(
        present["TWILIO_ACCOUNT_SID"],
        present["TWILIO_AUTH_TOKEN"],
        present.get("TWILIO_FROM_NUMBER"),
        client,
        base_url=settings.twilio_api_base_url,
        messaging_service_sid=present.get("TWILIO_MESSAGING_SERVICE_SID"),
        status_callback=f"{settings.public_url.rstrip('/')}/twilio/status" if settings.public_url else None,
    )
