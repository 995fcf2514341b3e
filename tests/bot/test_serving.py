"""How `operator serve` holds its connections: the bounded HTTP protocol (bot/web/connections.py) under
uvicorn on loopback, talked to over raw sockets, and the listening socket its workers share (keep-alive
responses must not wait on Nagle's algorithm: uvicorn binds it with `proto` 0, so asyncio skips
TCP_NODELAY). The same limits on a real `operator serve`, with the whole bot: tests/bot/test_serve.py."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from bot.settings import Settings
from bot.web.connections import REPORT_EVERY_S, BoundedConfig, Gate, Limits, address_key
from bot.web.serving import raise_open_file_limit, with_tcp_protocol
from tests.servers import LOOPBACK, free_port

OTHER_ADDRESS = "127.0.0.2"
"""Another loopback address (Linux routes all of 127/8 to lo): "an attacker" beside the test's client."""
QUICK = Limits(max_header_bytes=4096, header_timeout_s=0.5, body_timeout_s=0.5, keep_alive_timeout_s=1,
               max_pending_per_address=4, max_connections=64)  # fmt: skip


class Echo:
    """An ASGI app answering each request with the length of the body it read; it records hang-ups."""

    def __init__(self) -> None:
        self.disconnects = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.disconnects += 1
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
        answer = str(len(body)).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(answer)).encode())]})  # fmt: skip
        await send({"type": "http.response.body", "body": answer})


@contextlib.contextmanager
def bounded(limits: Limits = QUICK, app: Echo | None = None) -> Iterator[int]:
    """The protocol under uvicorn (uvloop, as `operator serve`) in a thread; yields its port."""
    port = free_port()
    config = BoundedConfig(app or Echo(), host=LOOPBACK, port=port, limits=limits, lifespan="off",
                           log_level="warning", access_log=False)  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(10)


def connect(port: int, source: str = LOOPBACK) -> socket.socket:
    sock = socket.socket()
    sock.bind((source, 0))
    sock.settimeout(5)
    sock.connect((LOOPBACK, port))
    return sock


def until_closed(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """Everything the server sends until it closes the connection (fails if it does not, in time)."""
    sock.settimeout(timeout)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def request(path: str = "/", body: bytes = b"", headers: str = "") -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: bot\r\nContent-Length: {len(body)}\r\n{headers}\r\n"
    return head.encode() + body


def test_the_limits_defaults() -> None:
    settings = Settings()
    limits = Limits.from_settings(settings)
    assert limits == Limits()
    assert (limits.max_header_bytes, limits.header_timeout_s, limits.body_timeout_s, limits.keep_alive_timeout_s,
            limits.max_pending_per_address, limits.max_connections) == (16_384, 10.0, 10.0, 5, 64, 4096)  # fmt: skip


def test_requests_within_the_limits_are_served_as_before() -> None:
    with bounded() as port, connect(port) as sock:
        big_header = "X-Padding: " + "p" * 3000 + "\r\n"  # under the 4 KiB limit, request line included
        sock.sendall(request(body=b"x" * 100_000, headers=big_header))  # a body far past the header limit
        sock.sendall(request(body=b"abc") + request(body=b"de"))  # pipelined, in one write
        sock.sendall(b"GET / HTTP/1.1\r\nHost: bot\r\nConnection: close\r\n\r\n")
        answers = until_closed(sock)
    assert answers.count(b"HTTP/1.1 200 OK") == 4
    assert [answers.split(b"\r\n\r\n")[i][:6] for i in (1, 2, 3, 4)] == [b"100000", b"3HTTP/", b"2HTTP/", b"0"]


def test_headers_over_the_limit_get_431_and_the_connection_closes() -> None:
    with bounded() as port, connect(port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: bot\r\nX-Big: " + b"a" * 100 * 1024 + b"\r\n\r\n")
        answer = until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    assert b"connection: close" in answer and answer.endswith(b"request headers too large")


def test_headers_are_counted_across_reads_and_requests() -> None:
    with bounded() as port:
        with connect(port) as sock:  # 5 KiB of headers sent 100 bytes at a time
            sock.sendall(b"GET / HTTP/1.1\r\nHost: bot\r\n")
            for _ in range(50):
                sock.sendall(b"X-More: " + b"m" * 90 + b"\r\n")
                time.sleep(0.001)
            answer = until_closed(sock)
        assert answer.startswith(b"HTTP/1.1 431 ")
        with connect(port) as sock:  # keep-alive: each request has its own allowance
            for _ in range(3):
                sock.sendall(request(headers="X-Padding: " + "p" * 3000 + "\r\n"))
                assert sock.recv(4096).startswith(b"HTTP/1.1 200 OK")


def test_a_half_sent_header_is_closed_by_the_header_timeout() -> None:
    with bounded() as port:
        with connect(port) as sock:
            started = time.monotonic()
            sock.sendall(b"POST /sms HTTP/1.1\r\nHost: bot\r\nX-Slow: ")
            answer = until_closed(sock)
            assert 0.4 < time.monotonic() - started < 2.5
        assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n") and answer.endswith(b"request header timeout")
        with connect(port) as sock:  # a connection that never sends a byte is closed too, without a word
            started = time.monotonic()
            assert until_closed(sock) == b""
            assert 0.4 < time.monotonic() - started < 2.5
        with connect(port) as sock:  # bytes dripping in do not extend it: it runs from the opening
            started = time.monotonic()
            for part in (b"GET / HT", b"TP/1.1\r\n", b"Host: b", b"ot\r\n"):
                sock.sendall(part)
                time.sleep(0.15)
            assert until_closed(sock).startswith(b"HTTP/1.1 408 ")
            assert time.monotonic() - started < 1.5


def test_a_half_sent_body_is_closed_by_the_body_timeout_and_the_app_sees_the_hang_up() -> None:
    app = Echo()
    with bounded(app=app) as port, connect(port) as sock:
        started = time.monotonic()
        sock.sendall(b"POST /sms HTTP/1.1\r\nHost: bot\r\nContent-Length: 1000\r\n\r\nFrom=%2B1555")
        answer = until_closed(sock)
        assert 0.4 < time.monotonic() - started < 2.5
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n") and answer.endswith(b"request body timeout")
    assert app.disconnects == 1


def test_keep_alive_connections_are_closed_when_idle_and_the_next_request_is_timed() -> None:
    with bounded() as port:
        with connect(port) as sock:
            sock.sendall(request())
            assert sock.recv(4096).startswith(b"HTTP/1.1 200 OK")
            started = time.monotonic()
            assert until_closed(sock) == b""  # uvicorn's keep-alive timeout (1 s here)
            assert 0.8 < time.monotonic() - started < 3
        with connect(port) as sock:
            sock.sendall(request())
            assert sock.recv(4096).startswith(b"HTTP/1.1 200 OK")
            sock.sendall(b"GET / HTTP/1.1\r\nHost:")  # the next request, half sent: the header timeout
            started = time.monotonic()
            assert until_closed(sock).startswith(b"HTTP/1.1 408 ")
            assert time.monotonic() - started < 0.9


def test_one_address_holding_half_headers_is_limited_not_everyone() -> None:
    with bounded() as port:
        held = [connect(port, OTHER_ADDRESS) for _ in range(QUICK.max_pending_per_address)]
        for sock in held:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: bot\r\n")
        time.sleep(0.1)
        with connect(port, OTHER_ADDRESS) as refused:
            started = time.monotonic()
            assert until_closed(refused, timeout=2) == b""  # closed at once, not at the header timeout
            assert time.monotonic() - started < 0.3
        with connect(port) as sock:  # another address is served meanwhile
            sock.sendall(request(body=b"hello"))
            assert sock.recv(4096).startswith(b"HTTP/1.1 200 OK")
        held[0].sendall(b"\r\n")  # one completes its headers: a place is free again
        assert held[0].recv(4096).startswith(b"HTTP/1.1 200 OK")
        with connect(port, OTHER_ADDRESS) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: bot\r\n\r\n")
            assert sock.recv(4096).startswith(b"HTTP/1.1 200 OK")
        for sock in held:
            sock.close()


def test_connections_past_max_connections_are_closed_at_once() -> None:
    limits = Limits(max_connections=16, max_pending_per_address=64, header_timeout_s=5)
    with bounded(limits) as port:
        held = [connect(port) for _ in range(16)]
        for sock in held:  # every one served once, then idle (keep-alive)
            sock.sendall(request())
            assert sock.recv(4096).startswith(b"HTTP/1.1 200 OK")
        with connect(port) as extra:
            assert until_closed(extra, timeout=2) == b""
        held.pop().close()
        time.sleep(0.1)
        with connect(port) as sock:
            sock.sendall(request())
            assert sock.recv(4096).startswith(b"HTTP/1.1 200 OK")
        for sock in held:
            sock.close()


def test_connections_closed_early_make_one_log_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="bot.web.connections")
    with bounded() as port:
        for _ in range(20):
            with connect(port) as sock:
                sock.sendall(b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 5000 + b"\r\n\r\n")
                assert until_closed(sock).startswith(b"HTTP/1.1 431 ")
        with connect(port) as sock:  # an Upgrade uvicorn cannot serve: answered as plain HTTP, not logged
            sock.sendall(b"GET / HTTP/1.1\r\nHost: bot\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
            assert sock.recv(4096).startswith(b"HTTP/1.1 200 OK")
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert lines == ["closed connections early (since the last report): 1 over max_header_bytes"]


def test_the_gate_reports_counts_once_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="bot.web.connections")
    now = [1000.0]
    gate = Gate(Limits(), clock=lambda: now[0])
    for reason in ["header timeout"] + ["over max_pending_per_address"] * 5 + ["body timeout"]:
        gate.note(reason)
    now[0] += REPORT_EVERY_S
    gate.note("header timeout")
    assert [r.getMessage() for r in caplog.records] == [
        "closed connections early (since the last report): 1 header timeout",
        "closed connections early (since the last report): 5 over max_pending_per_address, 1 body timeout, "
        "1 header timeout",
    ]


@pytest.mark.parametrize(
    ("client", "key"),
    [
        (("203.0.113.9", 5000), "203.0.113.9"),
        (("2001:db8:1:2:aaaa::1", 5000), "2001:db8:1:2::"),  # a subscriber's /64 counts as one address
        (("2001:db8:1:2:bbbb::7", 5000), "2001:db8:1:2::"),
        (("::ffff:198.51.100.4", 5000), "198.51.100.4"),
        (None, ""),
    ],
)
def test_connections_are_counted_per_address(client: tuple[str, int] | None, key: str) -> None:
    assert address_key(client) == key


def test_max_connections_fits_the_open_file_limit(caplog: pytest.LogCaptureFixture) -> None:
    assert Limits().within_open_files(65_536) == Limits()
    assert Limits().within_open_files(1024).max_connections == 1024 - 256
    assert "max_connections lowered from 4096 to 768" in caplog.text


def test_the_open_file_limit_is_raised_to_the_hard_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert hard == resource.RLIM_INFINITY or hard > 512, "this machine's hard limit is too low for the test"
    script = "from bot.web.serving import raise_open_file_limit; import resource; " \
             "print(raise_open_file_limit(), *resource.getrlimit(resource.RLIMIT_NOFILE))"  # fmt: skip

    def lowered() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (512, hard))

    result = subprocess.run([sys.executable, "-c", script], preexec_fn=lowered, capture_output=True, text=True,
                            check=True, timeout=60)  # fmt: skip
    reported, now_soft, now_hard = (int(value) for value in result.stdout.split())
    assert now_hard == hard and now_soft == reported and now_soft > 512
    assert raise_open_file_limit() >= soft


# --- the socket the workers share ---------------------------------------------------------------------


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
