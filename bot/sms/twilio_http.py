"""The twilio library's HTTP client, over the process's one `httpx.AsyncClient`.

Pooled connections, bounded timeouts and bodies, one place tests intercept with respx, and
`TWILIO_API_BASE_URL` honoured for every request. Failures are raised as the `OutboundError` types
below; the sender (`bot.sms.outbound`) turns them into a `Delivery`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from twilio.http import AsyncHttpClient
from twilio.http.response import Response

log = logging.getLogger(__name__)


TWILIO_API = "https://api.twilio.com"
"""Where Twilio's client sends Messages requests unless `TWILIO_API_BASE_URL` says otherwise."""
DEFAULT_TIMEOUT_S = 10.0
"""Per request. Late results are not racing Twilio's 15 s webhook window, but must not hang a task."""
MAX_BODY = 256 * 1024
"""A Message resource is about 1 KiB; anything this large is not one and is not buffered."""


class OutboundError(Exception):
    """Root of the errors the Twilio HTTP adapter raises; `str()` is short, safe text."""


class TwilioUnreachable(OutboundError):
    """The request got no HTTP answer: refused, dropped or timed out. Sending again may work."""


class TwilioTimeout(TwilioUnreachable):
    def __init__(self, seconds: float) -> None:
        super().__init__(f"Twilio timed out after {seconds:g} s")
        self.seconds = seconds


class TwilioBadResponse(OutboundError):
    """Twilio (or whatever answers in its place) sent something that cannot be a message resource."""


@dataclass
class Captured:
    """The HTTP answers the adapter got for one task while `capture()` was open.

    Twilio's exceptions drop the response headers, and `Retry-After` is one of them.
    """

    responses: list[Response] = field(default_factory=list)

    def header(self, name: str) -> str | None:
        """`name` from the latest answer's headers, if it had one."""
        if not self.responses or self.responses[-1].headers is None:
            return None
        value = httpx.Headers(self.responses[-1].headers).get(name)
        return value if isinstance(value, str) else None


class HttpxTwilioHttpClient(AsyncHttpClient):  # type: ignore[misc]
    """Twilio's async HTTP client interface on a shared `httpx.AsyncClient`.

    Twilio's own async client (`AsyncTwilioHttpClient`) opens an aiohttp session of its own; this
    one uses the process's client, so Twilio requests share its pool, its limits and its transport
    (which is also what respx intercepts in tests).

    The base URL is rewritten here, at the transport, rather than by setting `base_url` on the
    Twilio client's `api` domain: in twilio 9.13 both work for Messages, but the domain attribute
    covers one domain and is set after construction, while rewriting every `*.twilio.com` URI
    guarantees that no request of any resource leaves for the real Twilio when a fake is configured.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        base_url: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        max_body: int = MAX_BODY,
    ) -> None:
        super().__init__(log, True, timeout)
        self.client = client
        self.base_url = _override(base_url)
        self.max_body = max_body
        # Per task, so concurrent sends each see only their own answers.
        self._captured: ContextVar[Captured | None] = ContextVar(f"twilio_captured_{id(self)}", default=None)

    def url_for(self, uri: str) -> str:
        """`uri` with its Twilio origin replaced by the configured base URL (a path prefix is kept)."""
        if self.base_url is None:
            return uri
        parts = urlsplit(uri)
        host = parts.hostname or ""
        if host != "twilio.com" and not host.endswith(".twilio.com"):
            return uri
        return self.base_url + urlunsplit(("", "", parts.path, parts.query, ""))

    @contextmanager
    def capture(self) -> Iterator[Captured]:
        """Keep the answers this task gets while the block runs."""
        captured = Captured()
        token = self._captured.set(captured)
        try:
            yield captured
        finally:
            self._captured.reset(token)

    async def request(
        self,
        method: str,
        uri: str,
        params: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        """One request; transport failures raise `OutboundError`s, any HTTP status is returned for Twilio to judge."""
        seconds = self.timeout if timeout is None else timeout
        if seconds is None or seconds <= 0:
            raise ValueError(f"Twilio requests need a positive timeout, not {seconds!r}")
        try:
            async with self.client.stream(
                method.upper(),
                self.url_for(uri),
                params=params,
                data=data,
                headers=headers,
                auth=auth,
                timeout=seconds,
                follow_redirects=allow_redirects,
            ) as answer:
                text = await self._read(answer)
        except httpx.TimeoutException as exc:
            raise TwilioTimeout(seconds) from exc
        except httpx.ConnectError as exc:
            raise TwilioUnreachable("cannot connect to Twilio") from exc
        except httpx.TransportError as exc:
            raise TwilioUnreachable("connection to Twilio dropped") from exc
        # The resource's last path segment only: the full path names the account.
        log.debug("Twilio %s %s: HTTP %d", method.upper(), urlsplit(uri).path.rsplit("/", 1)[-1], answer.status_code)
        response = Response(answer.status_code, text, answer.headers)
        captured = self._captured.get()
        if captured is not None:
            captured.responses.append(response)
        return response

    async def _read(self, answer: httpx.Response) -> str:
        declared = answer.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.max_body:
            raise TwilioBadResponse("answer from Twilio too large")
        chunks: list[bytes] = []
        size = 0
        async for chunk in answer.aiter_bytes():
            size += len(chunk)
            if size > self.max_body:
                raise TwilioBadResponse("answer from Twilio too large")
            chunks.append(chunk)
        return b"".join(chunks).decode(answer.encoding or "utf-8", errors="replace")


def _override(base_url: str | None) -> str | None:
    if base_url is None or base_url.rstrip("/") == TWILIO_API:
        return None
    return base_url.rstrip("/")
