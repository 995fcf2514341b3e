"""HTTP for adapters: the shared client, bounded bodies, and httpx errors turned into `BackendError`s.

Every HTTP adapter goes through `HttpBackend`, so a hung, failing, lying or enormous backend is
handled the same way everywhere, and the client's URL never leaks into an error message.
"""

from __future__ import annotations

import functools
import json
import ssl
from collections.abc import AsyncIterable, Callable, Mapping
from typing import Any

import httpx

from monitors.errors import (
    BackendAuthError,
    BackendError,
    BackendQueryError,
    BackendTimeout,
    BackendUnavailable,
    BadBackendResponse,
)

MAX_BODY = 4 * 1024 * 1024
"""Largest response body read into memory; bigger answers are refused, not buffered."""

ErrorReason = Callable[[Any], str | None]
"""Pulls a backend's own short error reason out of a parsed error body."""


def new_client(max_connections: int = 50) -> httpx.AsyncClient:
    """The one client a process shares: pooled connections, no redirects, no environment proxies."""
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=20, keepalive_expiry=30)
    return httpx.AsyncClient(limits=limits, follow_redirects=False, trust_env=False, timeout=10.0, verify=tls_context())


@functools.cache
def tls_context() -> ssl.SSLContext:
    """What httpx verifies against without the environment (certifi's CA bundle), loaded once per process:
    loading it costs ~45 ms, paid again by every client built after the first (a second app in the same
    process, the CLI's checks, each test). A context only verifies; sharing it shares no session."""
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


class HttpBackend:
    """Requests to one backend's base URL with its timeout, headers and error mapping."""

    def __init__(
        self,
        display: str,
        client: httpx.AsyncClient,
        base_url: str,
        timeout_s: float,
        headers: Mapping[str, str] | None = None,
        error_reason: ErrorReason | None = None,
        max_body: int = MAX_BODY,
    ) -> None:
        self.display = display
        self.client = client
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.headers = dict(headers or {})
        self.error_reason = error_reason
        self.max_body = max_body

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | list[tuple[str, Any]] | None = None,
        json_body: Any = None,
        ok: tuple[int, ...] = (200,),
    ) -> tuple[int, bytes]:
        """(status, body) for a status in `ok`; any other outcome raises a `BackendError`."""
        try:
            async with self.client.stream(
                method,
                self.base_url + path,
                params=params,
                json=json_body,
                headers=self.headers,
                timeout=self.timeout_s,
            ) as response:
                body = await self._read(response)
        except httpx.TimeoutException as exc:
            raise BackendTimeout(self.display, self.timeout_s) from exc
        except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
            raise BackendUnavailable(self.display, _network_reason(exc)) from exc
        except httpx.HTTPError as exc:
            raise BackendError(self.display, type(exc).__name__) from exc
        if response.status_code in ok:
            return response.status_code, body
        raise self._status_error(response.status_code, body)

    async def get_json(self, path: str, params: Mapping[str, Any] | list[tuple[str, Any]] | None = None) -> Any:
        _, body = await self.request("GET", path, params=params)
        return parse_json(self.display, body)

    async def post_json(self, path: str, body: Any, params: Mapping[str, Any] | None = None) -> Any:
        _, raw = await self.request("POST", path, params=params, json_body=body)
        return parse_json(self.display, raw)

    async def _read(self, response: httpx.Response) -> bytes:
        body = await read_bounded(response.aiter_bytes(), self.max_body, response.headers.get("content-length"))
        if body is None:
            raise BadBackendResponse(self.display, "answer too large")
        return body

    def _status_error(self, status: int, body: bytes) -> BackendError:
        if status in (401, 403):
            return BackendAuthError(self.display, status)
        reason = self._reason(body)
        if status in (400, 404, 422):
            return BackendQueryError(self.display, reason or f"HTTP {status}")
        if status in (502, 503, 504):
            return BackendUnavailable(self.display, f"HTTP {status}")
        return BackendError(self.display, f"HTTP {status}")

    def _reason(self, body: bytes) -> str | None:
        if self.error_reason is None:
            return None
        try:
            return self.error_reason(json.loads(body))
        except (ValueError, TypeError, KeyError, AttributeError):
            return None


def parse_json(display: str, body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError as exc:
        raise BadBackendResponse(display, "not JSON") from exc


def _network_reason(exc: httpx.HTTPError) -> str:
    return "cannot connect" if isinstance(exc, httpx.ConnectError) else "connection dropped"


def dig(display: str, data: Any, *path: str | int, kind: type | tuple[type, ...] | None = None) -> Any:
    """`data[path[0]][path[1]]…`, checked: a missing key or a wrong type is a `BadBackendResponse`."""
    current = data
    for step in path:
        try:
            current = current[step]
        except (KeyError, IndexError, TypeError) as exc:
            raise BadBackendResponse(display, f"no {step!s} in answer") from exc
    if kind is not None and not isinstance(current, kind):
        raise BadBackendResponse(display, f"unexpected {type(current).__name__} in answer")
    return current


async def read_bounded(chunks: AsyncIterable[bytes], limit: int, declared: str | None = None) -> bytes | None:
    """All of a body, or None as soon as it is known to be over `limit` bytes: by its declared length
    (a Content-Length that is too large or not a number), or as it arrives. Nothing past the limit is
    kept, so a 100 MB answer (or request) costs `limit` bytes of memory, not 100 MB.

    One reader for every body Operator takes from outside: backends' answers here, and the web
    app's webhooks and forms (`bot.web.body`).
    """
    if declared is not None and declared.strip() and (not declared.strip().isdigit() or int(declared) > limit):
        return None
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            return None
        parts.append(chunk)
    return b"".join(parts)
