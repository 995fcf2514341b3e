"""The HTTP protocol `operator serve` runs: uvicorn's httptools protocol with the bounds it lacks.

uvicorn's httptools protocol reads a request's headers without a size limit (a 100 MB header is held
whole, and httptools joins a header's pieces by concatenation, so its cost grows with the square of its
size: 4 parallel 100 MB headers delayed a signed text to 21.7 s), puts no time limit on a request's
headers or body (half a header keeps a connection open for ever), and takes every connection the kernel
hands it (1,100 sockets holding half a header used up the default 1,024 open files; then neither a text
nor a health check was accepted). Measured in issue 12. Here, per connection:

- header bytes are counted before they reach the parser: past `max_header_bytes` the answer is 431, the
  connection is half-closed, and what the client still sends is read and dropped for `LINGER_S` (so it
  reads the 431 rather than a reset), then it is closed. The parser never holds more than the limit
  (twice the limit at worst, when a pipelined request starts inside a read that ends a body);
- one timer, armed only while a request is incomplete: `header_timeout_s` from the connection's opening
  (or its next request's first byte) to the end of the headers, `body_timeout_s` from there to the end
  of the body. A request that arrives in one read, the usual case, arms nothing after the first;
- a new connection is closed at once when its address (an IPv6 /64) already holds
  `max_pending_per_address` connections still sending headers, or the worker holds `max_connections`.
  So a flood from one address costs it its own connections, not everyone's.

Closed connections are reported in one log line a minute at most, never one per connection.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from http import HTTPStatus
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from bot.settings import Settings

log = logging.getLogger(__name__)

LINGER_S = 2.0
"""How long the rest of a refused request is read and dropped before its connection closes."""
REPORT_EVERY_S = 60.0
"""Connections closed early are summed up in one log line at most this often."""
RESERVED_FILES = 256
"""Open files kept for everything but client connections (database, Redis, backends, logs)."""

_IDLE, _HEAD, _BODY = 0, 1, 2
"""A connection's phase: between requests, receiving a request's headers, receiving its body."""


@dataclass(frozen=True)
class Limits:
    """The bounds on clients' connections (see the settings of the same names)."""

    max_header_bytes: int = 16_384
    header_timeout_s: float = 10.0
    body_timeout_s: float = 10.0
    keep_alive_timeout_s: int = 5
    max_pending_per_address: int = 64
    max_connections: int = 4096

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            max_header_bytes=settings.max_header_bytes,
            header_timeout_s=settings.header_timeout_s,
            body_timeout_s=settings.body_timeout_s,
            keep_alive_timeout_s=settings.keep_alive_timeout_s,
            max_pending_per_address=settings.max_pending_per_address,
            max_connections=settings.max_connections,
        )

    def within_open_files(self, open_files: int) -> Limits:
        """These limits with `max_connections` lowered to what the open-file limit allows."""
        allowed = max(open_files - RESERVED_FILES, 16)
        if self.max_connections <= allowed:
            return self
        log.warning("max_connections lowered from %d to %d to fit the open-file limit (%d)",
                    self.max_connections, allowed, open_files)  # fmt: skip
        return replace(self, max_connections=allowed)


class Gate:
    """One worker's count of connections still sending headers, by client address, and its report of the
    connections it closed early."""

    def __init__(self, limits: Limits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self.clock = clock
        self.pending: dict[str, int] = {}
        self.closed: Counter[str] = Counter()
        self._reported_at: float | None = None

    def refusal(self, address: str, open_connections: int) -> str | None:
        """Why a new connection from `address` must be closed at once, or None to take it."""
        if open_connections > self.limits.max_connections:
            return "over max_connections"
        if self.pending.get(address, 0) >= self.limits.max_pending_per_address:
            return "over max_pending_per_address"
        return None

    def enter(self, address: str) -> None:
        self.pending[address] = self.pending.get(address, 0) + 1

    def leave(self, address: str) -> None:
        left = self.pending.get(address, 0) - 1
        if left > 0:
            self.pending[address] = left
        else:
            self.pending.pop(address, None)

    def note(self, reason: str) -> None:
        """Count a connection closed early; log the counts when the last report is a minute old."""
        self.closed[reason] += 1
        now = self.clock()
        if self._reported_at is None or now - self._reported_at >= REPORT_EVERY_S:
            self._reported_at = now
            counts = ", ".join(f"{count} {why}" for why, count in self.closed.most_common())
            log.warning("closed connections early (since the last report): %s", counts)
            self.closed.clear()


class BoundedConfig(uvicorn.Config):
    """uvicorn's configuration with the limits, the worker's `Gate`, and the bounded protocol."""

    def __init__(self, app: Any, *, limits: Limits, **options: Any) -> None:
        super().__init__(app, http=BoundedHttpProtocol, ws="none", timeout_keep_alive=limits.keep_alive_timeout_s,
                         **options)  # fmt: skip
        self.limits = limits
        self.gate = Gate(limits)


def address_key(client: tuple[str, int] | None) -> str:
    """The address a client's connections are counted under: its IPv4 address, or its IPv6 /64 (one
    subscriber's whole range), an IPv4-mapped IPv6 address as the IPv4 one."""
    if client is None:
        return ""
    host = client[0]
    if ":" not in host:
        return host
    try:
        address = ipaddress.IPv6Address(host)
    except ValueError:
        return host
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(ipaddress.IPv6Network((address, 64), strict=False).network_address)


class BoundedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header size limit, header and body timeouts, and the gate."""

    def __init__(self, config: uvicorn.Config, server_state: ServerState, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None) -> None:  # fmt: skip
        super().__init__(config, server_state, app_state, _loop)
        if not isinstance(config, BoundedConfig):
            raise TypeError("BoundedHttpProtocol needs a BoundedConfig (its limits and gate)")
        self.limits = config.limits
        self.max_header_bytes = config.limits.max_header_bytes
        self.gate = config.gate
        self.address = ""
        self.phase = _HEAD
        self.head_bytes = 0
        self.pending = False
        self.refused = False
        self.began = 0
        """Requests begun on this connection (a feed that starts one is told by the count changing)."""
        self.completed = 0
        self.timer: asyncio.TimerHandle | None = None
        self.timer_phase = _IDLE

    # --- connection ---------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.address = address_key(self.client)
        reason = self.gate.refusal(self.address, len(self.connections))
        if reason is not None:
            self.refused = True
            self.gate.note(reason)
            transport.close()
            return
        self._set_pending(True)
        self._arm(_HEAD)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._set_pending(False)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.refused:
            return  # a refused request's rest, read and dropped until the connection closes
        completed = self.completed
        limit = self.max_header_bytes
        while data:
            if self.phase == _BODY:  # bodies are bounded by the endpoints that read them (bot.web.body)
                piece, data = data, b""
            else:
                room = limit - self.head_bytes
                if room <= 0:
                    self._refuse_large_headers()
                    return
                piece, data = (data, b"") if len(data) <= room else (data[:room], data[room:])
            counting, heads, done = self.phase != _BODY, self.began, self.completed
            super().data_received(piece)
            if self.transport.is_closing():
                return  # a malformed request, answered 400 by uvicorn
            if self.phase == _HEAD:
                # A request that began inside this piece is charged all of it (its own share is not known).
                self.head_bytes = len(piece) if self.began != heads or not counting else self.head_bytes + len(piece)
            elif self.phase == _BODY or self.completed != done:
                self.head_bytes = 0
            else:
                self.head_bytes += len(piece)  # blank lines between requests
        if self.phase == _IDLE and self.completed != completed:  # the usual case: whole requests, nothing more
            if self.timer is not None:
                self._disarm()  # uvicorn's keep-alive timeout takes over once the response is sent
        else:
            self._rearm()

    # --- parser callbacks ----------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.began += 1
        self.phase = _HEAD
        if not self.pending:
            self._set_pending(True)

    def on_headers_complete(self) -> None:
        self.phase = _BODY
        if self.pending:
            self._set_pending(False)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self.phase = _IDLE
        self.completed += 1
        super().on_message_complete()

    def _unsupported_upgrade_warning(self) -> None:
        """A request asking for a protocol we do not serve is answered as plain HTTP; not worth two
        warnings per request, which anyone could flood the log with."""
        log.debug("ignored an Upgrade header")

    # --- timers --------------------------------------------------------------------------------------

    def _rearm(self) -> None:
        """After a read that left a request incomplete (or sent only blank lines): the timer for its phase."""
        if self.phase == _BODY:
            if self.timer_phase != _BODY:
                self._arm(_BODY)
        elif self.phase == _HEAD:
            if self.timer_phase != _HEAD:
                self._arm(_HEAD)  # from this request's first byte (the first request's: from the opening)
        elif self.timer is None:
            self._arm(_HEAD)  # bytes between requests that start none (blank lines): a request is coming

    def _arm(self, phase: int) -> None:
        self._disarm()
        delay = self.limits.body_timeout_s if phase == _BODY else self.limits.header_timeout_s
        self.timer = self.loop.call_later(delay, self._expired, phase)
        self.timer_phase = phase

    def _disarm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.timer_phase = _IDLE

    def _expired(self, phase: int) -> None:
        self.timer = None
        self.timer_phase = _IDLE
        if self.transport.is_closing():
            return
        self.gate.note("body timeout" if phase == _BODY else "header timeout")
        cycle = self.cycle if phase == _BODY else None
        if cycle is not None and not cycle.response_complete:
            if not cycle.response_started:
                self._write_plain(HTTPStatus.REQUEST_TIMEOUT, "request body timeout")
            cycle.disconnected = True  # the endpoint reading the body sees the client gone, and sends nothing
            cycle.message_event.set()
        elif phase == _HEAD and self.began != self.completed and self._idle():
            self._write_plain(HTTPStatus.REQUEST_TIMEOUT, "request header timeout")
        self.transport.close()

    # --- refusals ------------------------------------------------------------------------------------

    def _refuse_large_headers(self) -> None:
        """431, then read and drop what the client still sends for a moment, then close."""
        self.refused = True
        self.gate.note("over max_header_bytes")
        self._disarm()
        self.parser = None  # type: ignore[assignment]  # drops the partial headers it holds
        if not self._idle():  # a pipelined request's response is still being written: no room for a 431
            self.transport.close()
            return
        self._write_plain(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "request headers too large")
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_S, self.transport.close)

    def _idle(self) -> bool:
        """No response is being written on this connection (so one of ours cannot interleave with it)."""
        return self.cycle is None or self.cycle.response_complete

    def _write_plain(self, status: HTTPStatus, text: str) -> None:
        body = text.encode("ascii")
        head = [f"HTTP/1.1 {status.value} {status.phrase}\r\n".encode("ascii")]
        head += [name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers]
        head.append(b"content-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n" % len(body))
        self.transport.write(b"".join(head) + b"connection: close\r\n\r\n" + body)

    def _set_pending(self, pending: bool) -> None:
        if pending != self.pending:
            self.pending = pending
            (self.gate.enter if pending else self.gate.leave)(self.address)
