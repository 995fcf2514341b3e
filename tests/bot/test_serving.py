"""The listening socket `operator serve --workers N` hands its workers: keep-alive responses must not
wait on Nagle's algorithm (uvicorn binds it with `proto` 0, so asyncio skips TCP_NODELAY)."""

from __future__ import annotations

import asyncio
import socket

from bot.web.serving import with_tcp_protocol
from tests.servers import LOOPBACK


def accepted_nodelay(listener: socket.socket) -> int:
    """TCP_NODELAY on the socket asyncio's server makes for one accepted connection."""
    seen: list[int] = []

    async def main() -> None:
        def made(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            seen.append(writer.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(made, sock=listener)
        async with server:
            _, writer = await asyncio.open_connection(*listener.getsockname())
            for _ in range(100):
                if seen:
                    break
                await asyncio.sleep(0.01)
            writer.close()

    asyncio.run(main())
    return seen[0]


def bound_like_uvicorn() -> socket.socket:
    sock = socket.socket(family=socket.AF_INET)  # as uvicorn's Config.bind_socket does: proto left at 0
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((LOOPBACK, 0))
    return sock


def test_uvicorns_bound_socket_loses_nodelay() -> None:
    """The bug being worked around; if uvicorn or asyncio fix it, this fails and the workaround can go."""
    sock = bound_like_uvicorn()
    assert sock.proto == 0
    assert accepted_nodelay(sock) == 0


def test_the_rewrapped_socket_keeps_nodelay() -> None:
    sock = bound_like_uvicorn()
    port = sock.getsockname()[1]
    fixed = with_tcp_protocol(sock)
    assert fixed.proto == socket.IPPROTO_TCP and fixed.getsockname()[1] == port and fixed.get_inheritable()
    assert accepted_nodelay(fixed) != 0


def test_other_sockets_are_left_alone() -> None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # --uds
    try:
        assert with_tcp_protocol(sock) is sock
    finally:
        sock.close()
