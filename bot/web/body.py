"""Request bodies read with a bound: a client that declares or sends more than the limit is refused
before more than the limit is held in memory."""

from __future__ import annotations

from starlette.requests import Request

from monitors.http import read_bounded


async def bounded_body(request: Request, limit: int) -> bytes | None:
    """The whole body, or None if it is over `limit` bytes (declared or sent)."""
    return await read_bounded(request.stream(), limit, request.headers.get("content-length"))
