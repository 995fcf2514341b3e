"""Run the ASGI app under uvicorn, with one or several worker processes.

Not `uvicorn.run`, for one reason: with `workers > 1` uvicorn binds the listening socket itself with
`proto` 0, accepted sockets inherit it, and asyncio only turns on TCP_NODELAY for sockets that say
IPPROTO_TCP. Nagle's algorithm then holds each keep-alive response's second segment for the client's
delayed ACK, ~40 ms per request (uvicorn issue #3149). The bound socket is re-wrapped here so the kernel
reports its real protocol; one worker is unaffected (asyncio binds from getaddrinfo), and runs as before.
"""

from __future__ import annotations

import socket
import sys
from typing import Any

import uvicorn
from uvicorn.supervisors import Multiprocess

STARTUP_FAILURE = 3
"""uvicorn's own exit status when the server did not start."""


class _Config(uvicorn.Config):
    def bind_socket(self) -> socket.socket:
        return with_tcp_protocol(super().bind_socket())


def with_tcp_protocol(sock: socket.socket) -> socket.socket:
    """The same listening socket, its `proto` read from the kernel (IPPROTO_TCP for TCP) rather than 0."""
    if sock.family not in (socket.AF_INET, socket.AF_INET6) or sock.proto != 0:
        return sock
    fixed = socket.socket(fileno=sock.detach())  # family, type and proto detected from the descriptor
    fixed.set_inheritable(True)
    return fixed


def serve(app: str, *, host: str, port: int, workers: int, **options: Any) -> None:
    """Serve the app factory at the import path `app` (`module:function`) until stopped."""
    config = _Config(app, host=host, port=port, workers=workers, factory=True, **options)
    server = uvicorn.Server(config)
    try:
        if workers > 1:
            Multiprocess(config, sockets=[config.bind_socket()]).run()
        else:
            server.run()
    except KeyboardInterrupt:
        pass
    if workers == 1 and not server.started:
        sys.exit(STARTUP_FAILURE)
