"""A real PostgreSQL behind a real pgBouncer for the pgBouncer tests, client load that fills the pool,
and raw TCP servers that misbehave at the protocol level (silent, HTTP, logs in then hangs).

PostgreSQL refuses to run as root and pgBouncer wants `-u` for it, so when the tests run as root both
run as the `postgres` user, in a directory under /tmp handed to that user (pytest's own temporary
directories sit below a root-only parent the server could not enter).
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from tests.servers import LOOPBACK, Process, as_user, binary, free_port, give_to, wait_until

SERVER_USER = "postgres"
PG_BIN = "/usr/lib/postgresql/*/bin/"

APP_DB = "appdb"
APP_USER = "app"
APP_PASSWORD = "app-pw-Kq83"
ADMIN_USER = "opsbot"
ADMIN_PASSWORD = "S3cr3t-adm1n-pw"
ODD_DB = 'we"ird;db\n<é>\x07'
"""A database name with a quote, a semicolon, a line break, a non-ASCII letter and a bell. pgBouncer's ini
allows only [A-Za-z0-9_.-] in names, so it reaches pgBouncer the way odd names do in production: a
client asks for it and the fallback `*` entry makes a pool of that name."""
ODD_USER = "ev'il\"user;--ü"
POOL_SIZE = 2
"""Server connections per pool: small, so a few concurrent clients must queue."""


@dataclass
class Bouncer:
    """The running pair: connect as `admin_dsn` (plus ADMIN_PASSWORD) for the admin console."""

    pg_port: int
    port: int
    processes: list[Process]

    @property
    def admin_dsn(self) -> str:
        return f"postgresql://{ADMIN_USER}@{LOOPBACK}:{self.port}/pgbouncer"

    def client_dsn(self, database: str = APP_DB, user: str = APP_USER) -> str:
        return psycopg.conninfo.make_conninfo(host=LOOPBACK, port=self.port, dbname=database, user=user)

    def show(self, what: str) -> list[dict[str, Any]]:
        """The admin console's own rows, read directly: what the adapter's numbers must match."""
        with psycopg.connect(self.admin_dsn, password=ADMIN_PASSWORD, autocommit=True) as conn:
            cursor = psycopg.ClientCursor(conn, row_factory=dict_row)
            cursor.execute(sql.SQL("SHOW {}").format(sql.SQL(what)))
            return list(cursor.fetchall())

    def pool(self, database: str = APP_DB) -> dict[str, Any]:
        return next(row for row in self.show("POOLS") if row["database"] == database)


def _run(args: Sequence[str], what: str) -> None:
    done = subprocess.run(list(args), capture_output=True, text=True, check=False, **as_user(SERVER_USER))  # noqa: S603
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed ({done.returncode}): {done.stdout}\n{done.stderr}")


def start_postgres(tmp: Path) -> tuple[Process, int]:
    initdb, postgres = binary("initdb", PG_BIN + "initdb"), binary("postgres", PG_BIN + "postgres")
    data, sockets = tmp / "data", tmp / "sock"
    _run([initdb, "-D", str(data), "-U", SERVER_USER, "--auth-local=trust", "--auth-host=scram-sha-256",
          "--no-sync", "-E", "UTF8", "--locale=C"], "initdb")  # fmt: skip
    sockets.mkdir()
    give_to(sockets, SERVER_USER)
    port = free_port()
    args = [postgres, "-D", str(data), "-p", str(port), "-k", str(sockets), "-c", f"listen_addresses={LOOPBACK}",
            "-c", "fsync=off", "-c", "max_connections=40"]  # fmt: skip
    process = Process(args, tmp / "postgres.log", cwd=tmp, user=SERVER_USER)
    superuser = psycopg.conninfo.make_conninfo(host=str(sockets), port=port, dbname="postgres", user=SERVER_USER)

    def accepting() -> bool:
        try:
            with psycopg.connect(superuser, connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    process.wait_ready(accepting, what="postgres")
    with psycopg.connect(superuser, autocommit=True) as conn:
        for role in (APP_USER, ODD_USER):
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), APP_PASSWORD))
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(APP_DB), sql.Identifier(APP_USER)))
    return process, port


def _ini(tmp: Path, pg_port: int, port: int) -> Path:
    backend = f"host={LOOPBACK} port={pg_port} dbname={APP_DB}"
    users = {ADMIN_USER: ADMIN_PASSWORD, APP_USER: APP_PASSWORD, ODD_USER: APP_PASSWORD}
    (tmp / "userlist.txt").write_text("".join(f'"{u.replace(chr(34), 2 * chr(34))}" "{p}"\n' for u, p in users.items()))
    ini = tmp / "pgbouncer.ini"
    ini.write_text(
        f"[databases]\n{APP_DB} = {backend}\n* = {backend}\n\n"
        f"[pgbouncer]\nlisten_addr = {LOOPBACK}\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = scram-sha-256\nauth_file = {tmp / 'userlist.txt'}\n"
        f"admin_users = {ADMIN_USER}\nstats_users = {ADMIN_USER}\n"
        f"pool_mode = transaction\ndefault_pool_size = {POOL_SIZE}\nmax_client_conn = 100\n"
        f"stats_period = 1\nlogfile = {tmp / 'pgbouncer.log'}\npidfile =\n"
    )
    return ini


@contextlib.contextmanager
def postgres_and_pgbouncer() -> Iterator[Bouncer]:
    """PostgreSQL and pgBouncer on free loopback ports, in a temporary directory removed afterwards."""
    pgbouncer = binary("pgbouncer", "/usr/sbin/pgbouncer")
    tmp = Path(tempfile.mkdtemp(prefix="operator-pg-"))
    give_to(tmp, SERVER_USER)
    processes: list[Process] = []
    try:
        postgres, pg_port = start_postgres(tmp)
        processes.append(postgres)
        port = free_port()
        ini = _ini(tmp, pg_port, port)
        give_to(tmp, SERVER_USER)
        bouncer_process = Process([pgbouncer, str(ini)], tmp / "pgbouncer.out", cwd=tmp, user=SERVER_USER)
        processes.append(bouncer_process)
        bouncer = Bouncer(pg_port, port, processes)

        def answering() -> bool:
            try:
                return bool(bouncer.show("VERSION"))
            except psycopg.OperationalError:
                return False

        bouncer_process.wait_ready(answering, what="pgbouncer")
        yield bouncer
    finally:
        for process in reversed(processes):
            process.stop()
        shutil.rmtree(tmp, ignore_errors=True)


# --- client load ----------------------------------------------------------------------------------


@dataclass
class Load:
    """`clients` connections through pgBouncer, each running one long `pg_sleep`; with more clients than
    POOL_SIZE the rest wait in pgBouncer's queue. `stop()` cancels them all."""

    dsn: str
    clients: int
    sleep_s: float = 60.0
    connections: list[psycopg.Connection[Any]] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        for _ in range(self.clients):
            conn = psycopg.connect(self.dsn, password=APP_PASSWORD, autocommit=True, prepare_threshold=None)
            self.connections.append(conn)
            thread = threading.Thread(target=self._sleep, args=(conn,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _sleep(self, conn: psycopg.Connection[Any]) -> None:
        with contextlib.suppress(psycopg.Error):
            conn.execute("SELECT pg_sleep(%s)", (self.sleep_s,))

    def stop(self) -> None:
        for conn in self.connections:
            with contextlib.suppress(psycopg.Error):
                conn.cancel_safe(timeout=5)
        for thread in self.threads:
            thread.join(timeout=10)
        for conn in self.connections:
            conn.close()


@contextlib.contextmanager
def load(bouncer: Bouncer, clients: int, database: str = APP_DB, user: str = APP_USER) -> Iterator[Load]:
    """Sleeping clients, held until pgBouncer shows every one of them as active or waiting."""
    running = Load(bouncer.client_dsn(database, user), clients)
    try:
        running.start()
        wait_until(lambda: _seated(bouncer, database) >= clients, 15, "client load")
        yield running
    finally:
        running.stop()


def _seated(bouncer: Bouncer, database: str) -> int:
    pool = bouncer.pool(database)
    return int(pool["sv_active"]) + int(pool["cl_waiting"])


def quick_queries(bouncer: Bouncer, seconds: float) -> int:
    """As many `SELECT 1` as fit in `seconds`, one client: real traffic for SHOW STATS to average."""
    done = 0
    with psycopg.connect(bouncer.client_dsn(), password=APP_PASSWORD, autocommit=True, prepare_threshold=None) as conn:
        stop = threading.Event()
        threading.Timer(seconds, stop.set).start()
        while not stop.is_set():
            conn.execute("SELECT 1")
            done += 1
    return done


# --- misbehaving TCP servers ----------------------------------------------------------------------


def _message(kind: bytes, payload: bytes = b"") -> bytes:
    return kind + struct.pack("!i", len(payload) + 4) + payload


LOGIN_THEN_SILENCE = b"".join([
    _message(b"R", struct.pack("!i", 0)),  # AuthenticationOk
    _message(b"S", b"server_version\x0015.0\x00"),
    _message(b"S", b"client_encoding\x00UTF8\x00"),
    _message(b"S", b"standard_conforming_strings\x00on\x00"),
    _message(b"K", struct.pack("!ii", 4242, 1234)),  # BackendKeyData
    _message(b"Z", b"I"),  # ReadyForQuery
])  # fmt: skip
"""What a PostgreSQL server says after a startup packet when it lets anyone in."""

HTTP_400 = b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 11\r\nConnection: close\r\n\r\nBad Request"


class TcpServer:
    """A loopback TCP server with a scripted protocol: "silent" accepts and never says a word, "http"
    answers whatever arrives with an HTTP 400 and hangs up (like a proxy or web server on the wrong
    port), "login" plays a PostgreSQL that lets the client in and then never answers a query."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.listener = socket.create_server((LOOPBACK, 0))
        self.port = int(self.listener.getsockname()[1])
        self.held: list[socket.socket] = []
        self._stopped = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def dsn(self) -> str:
        return f"postgresql://{ADMIN_USER}@{LOOPBACK}:{self.port}/pgbouncer"

    def _serve(self) -> None:
        while not self._stopped.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.held.append(conn)
            threading.Thread(target=self._talk, args=(conn,), daemon=True).start()

    def _talk(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            if self.mode == "http":
                conn.recv(4096)
                conn.sendall(HTTP_400)
                conn.shutdown(socket.SHUT_WR)
            elif self.mode == "login":
                self._login(conn)

    def _login(self, conn: socket.socket) -> None:
        while True:
            length, code = struct.unpack("!ii", _read(conn, 8))
            rest = _read(conn, length - 8)
            if code in (80877103, 80877104):  # SSLRequest, GSSENCRequest: no encryption here
                conn.sendall(b"N")
                continue
            del rest  # the startup packet: user, database; anyone is welcome
            conn.sendall(LOGIN_THEN_SILENCE)
            return

    def stop(self) -> None:
        self._stopped.set()
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept(); close() alone does not
        self.listener.close()
        for conn in self.held:
            conn.close()
        self.thread.join(timeout=5)


def _read(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise OSError("peer closed")
        data += chunk
    return data


def refused_dsn() -> str:
    """A pgBouncer DSN on a loopback port nothing listens on."""
    return f"postgresql://{ADMIN_USER}@{LOOPBACK}:{free_port()}/pgbouncer"
