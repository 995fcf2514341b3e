"""Run the ASGI app under uvicorn, with one or several worker processes, behind the connection limits of
`bot.web.connections`.

Not `uvicorn.run`, for three reasons:

- the HTTP protocol is `BoundedHttpProtocol` (header size, header and body timeouts, connections per
  address and in all), and the open-file limit is raised to its hard limit first, so `max_connections`
  is not cut short by the usual soft limit of 1,024;
- "listening on http://HOST:PORT" is logged once the app is ready (its lifespan done, in every worker),
  not when the socket is bound;
- with `workers > 1` uvicorn binds the listening socket itself with `proto` 0, accepted sockets inherit
  it, and asyncio only turns on TCP_NODELAY for sockets that say IPPROTO_TCP. Nagle's algorithm then holds
  each keep-alive response's second segment for the client's delayed ACK, ~40 ms per request (uvicorn
  issue #3149). The bound socket is re-wrapped here so the kernel reports its real protocol; one worker
  is unaffected (asyncio binds from getaddrinfo).
"""

from __future__ import annotations

import logging
import resource
import socket
import sys
import time
from typing import Any

import uvicorn
from uvicorn.supervisors import Multiprocess

from bot.web.connections import BoundedConfig, Limits

log = logging.getLogger(__name__)

STARTUP_FAILURE = 3
"""uvicorn's own exit status when the server did not start."""
READY_WAIT_S = 300.0
"""How long the supervisor waits for every worker to be ready before it stops waiting to say so."""


class _Config(BoundedConfig):
    def bind_socket(self) -> socket.socket:
        return with_tcp_protocol(super().bind_socket())


class _Server(uvicorn.Server):
    """One worker serving in this process: says where it listens once its app is ready."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if not self.should_exit:
            announce(f"listening on {listening_url(self.config.host, self.config.port)}")


class _Supervisor(Multiprocess):
    """Several workers: says where it listens once all of them are ready."""

    def init_processes(self) -> None:
        super().init_processes()
        deadline = time.monotonic() + READY_WAIT_S
        while time.monotonic() < deadline and not self.should_exit.is_set():
            self.handle_signals()  # Ctrl+C while the workers start
            if not all(process.process.is_alive() for process in self.processes):
                return  # the supervisor's loop reports it
            if all(process.is_ready(timeout=1) for process in self.processes):
                url = listening_url(self.config.host, self.config.port)
                announce(f"listening on {url} ({len(self.processes)} workers)")
                return
            time.sleep(0.1)


def announce(message: str) -> None:
    """A line on stderr formatted as the log's lines are (JSON or not), whatever the log level, and not
    through the log's phone-number mask, which takes an address and port such as 127.0.0.1:8000 for a
    number. Only for messages that hold no number by construction."""
    handlers = logging.getLogger().handlers
    formatter = next((h.formatter for h in handlers if h.formatter is not None), None) or logging.Formatter()
    record = log.makeRecord(log.name, logging.INFO, __file__, 0, message, (), None)
    sys.stderr.write(formatter.format(record) + "\n")
    sys.stderr.flush()


def listening_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def with_tcp_protocol(sock: socket.socket) -> socket.socket:
    """The same listening socket, its `proto` read from the kernel (IPPROTO_TCP for TCP) rather than 0."""
    if sock.family not in (socket.AF_INET, socket.AF_INET6) or sock.proto != 0:
        return sock
    fixed = socket.socket(fileno=sock.detach())  # family, type and proto detected from the descriptor
    fixed.set_inheritable(True)
    return fixed


def raise_open_file_limit() -> int:
    """Raise this process's soft limit on open files to its hard limit (workers inherit it); the soft
    limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 1_048_576)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError):  # a hard limit of "unlimited" is capped by the kernel's nr_open
            pass
    return soft if soft != resource.RLIM_INFINITY else 1_048_576


def serve(app: str, *, host: str, port: int, workers: int, limits: Limits, **options: Any) -> None:
    """Serve the app factory at the import path `app` (`module:function`) until stopped."""
    limits = limits.within_open_files(raise_open_file_limit())
    config = _Config(app, host=host, port=port, workers=workers, factory=True, limits=limits, **options)
    server = _Server(config)
    try:
        if workers > 1:
            _Supervisor(config, sockets=[config.bind_socket()]).run()
        else:
            server.run()
    except KeyboardInterrupt:
        pass
    if workers == 1 and not server.started:
        sys.exit(STARTUP_FAILURE)
