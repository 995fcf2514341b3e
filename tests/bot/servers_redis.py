"""A real Redis for the shared-store tests (Debian's redis-server), on a free loopback port, with a password,
no persistence, in a temporary directory removed afterwards. `stop()` and `start()` take it down and bring
it back on the same port, empty (as after a crash without persistence), for outage tests.

Run as a script (`python -m tests.bot.servers_redis`) it prints what the shared stores add to each message.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from tests.servers import LOOPBACK, Process, binary, free_port

PASSWORD = "r3dis-S3cret:pw@x"
"""With characters that must be escaped in a URL, so a test can look for it (and its escaped form) in errors."""


@dataclass
class RedisServer:
    port: int
    directory: Path
    password: str = PASSWORD
    process: Process | None = None

    @property
    def url(self) -> str:
        return f"redis://:{quote(self.password, safe='')}@{LOOPBACK}:{self.port}/0"

    def start(self) -> None:
        """Start it (again) on its port; returns once it answers PING."""
        if self.process is not None and self.process.alive():
            return
        args = [binary("redis-server", "/usr/bin/redis-server"), "--port", str(self.port), "--bind", LOOPBACK,
                "--save", "", "--appendonly", "no", "--dir", str(self.directory), "--requirepass", self.password,
                "--loglevel", "warning"]  # fmt: skip
        self.process = Process(args, self.directory / f"redis-{time.monotonic_ns()}.log", cwd=self.directory)
        self.process.wait_ready(self.answers, timeout=15, what="redis")

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def flush(self) -> None:
        """Empty every key, so one server can serve a module's tests one after another."""
        with socket.create_connection((LOOPBACK, self.port), timeout=2) as sock:
            sock.sendall(_command("AUTH", self.password) + _command("FLUSHALL"))
            reply = b""
            while reply.count(b"\r\n") < 2:
                chunk = sock.recv(256)
                if not chunk:
                    break
                reply += chunk

    def answers(self) -> bool:
        """PING over a raw socket (no client library: the code under test brings its own)."""
        try:
            with socket.create_connection((LOOPBACK, self.port), timeout=1) as sock:
                sock.sendall(_command("AUTH", self.password) + _command("PING"))
                reply = b""
                while reply.count(b"\r\n") < 2:
                    chunk = sock.recv(256)
                    if not chunk:
                        return False
                    reply += chunk
                return reply == b"+OK\r\n+PONG\r\n"
        except OSError:
            return False


def _command(*words: str) -> bytes:
    parts = [f"*{len(words)}\r\n".encode()]
    for word in words:
        data = word.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


@contextlib.contextmanager
def redis_server() -> Iterator[RedisServer]:
    """Redis on a free loopback port; fails (never skips) when redis-server is not installed."""
    directory = Path(tempfile.mkdtemp(prefix="operator-redis-"))
    server = RedisServer(free_port(), directory)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)
