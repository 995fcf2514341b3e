"""Request bodies read with a bound: a client that declares or sends more than the limit is refused
before more than the limit is held in memory.

A client that declares a body and hangs up before sending it all is not an error of ours: starlette
raises `ClientDisconnect`, which uvicorn would log as a 57-line traceback at ERROR for every such request
(anyone could flood the log with them, issue 12). Here it becomes `ClientGone`, and the endpoints that
read bodies answer it through `hang_ups_answered`: one DEBUG line, nothing at INFO, no traceback.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import ParamSpec

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from monitors.http import read_bounded

log = logging.getLogger(__name__)
P = ParamSpec("P")


class ClientGone(Exception):
    """The client hung up before sending the whole body it declared."""


async def bounded_body(request: Request, limit: int) -> bytes | None:
    """The whole body, or None if it is over `limit` bytes (declared or sent). Raises `ClientGone`."""
    try:
        return await read_bounded(request.stream(), limit, request.headers.get("content-length"))
    except ClientDisconnect:
        raise ClientGone(request.url.path) from None


def hang_ups_answered(endpoint: Callable[P, Awaitable[Response]]) -> Callable[P, Awaitable[Response]]:
    """The endpoint, with a client that hung up mid-body answered by a 400 nobody reads (uvicorn drops it)."""

    @functools.wraps(endpoint)
    async def answered(*args: P.args, **kwargs: P.kwargs) -> Response:
        try:
            return await endpoint(*args, **kwargs)
        except ClientGone as gone:
            log.debug("a client hung up before sending its whole body (%s)", gone)
            return Response(status_code=400)

    return answered
