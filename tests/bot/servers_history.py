"""A real PostgreSQL for the history tests, started by the pgBouncer tests' own helper (run as the
`postgres` user in a directory under /tmp, a role `app` with a password owning the database `appdb`)."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psycopg

from tests.monitors.servers_postgres import APP_DB, APP_PASSWORD, APP_USER, SERVER_USER, start_postgres
from tests.servers import LOOPBACK, Process, give_to


@dataclass
class Postgres:
    port: int
    process: Process
    sockets: Path
    """The Unix socket directory, where the `postgres` superuser logs in without a password."""

    def url(self, password: str = APP_PASSWORD, port: int | None = None, scheme: str = "postgresql") -> str:
        """A DATABASE_URL as a hosting provider hands it out (no driver in the scheme)."""
        return f"{scheme}://{APP_USER}:{quote(password, safe='')}@{LOOPBACK}:{port or self.port}/{APP_DB}"

    def connect(self, superuser: bool = False) -> psycopg.Connection[tuple[object, ...]]:
        """A direct connection (not through the code under test): as `app`, or as the superuser over the socket."""
        login = (
            {"host": str(self.sockets), "user": SERVER_USER}
            if superuser
            else {"host": LOOPBACK, "user": APP_USER, "password": APP_PASSWORD}
        )
        return psycopg.connect(psycopg.conninfo.make_conninfo(port=self.port, dbname=APP_DB, **login))

    def execute(self, statement: str, superuser: bool = False) -> list[tuple[object, ...]]:
        """Run one statement and commit, e.g. to read what was really stored."""
        with self.connect(superuser) as conn:
            cursor = conn.execute(statement.encode())
            return list(cursor.fetchall()) if cursor.description else []

    def reset(self) -> None:
        """An empty database for the next test: Operator's tables and its schema version gone."""
        self.execute(
            "DROP TABLE IF EXISTS message_history, alert_subscriptions, health_checks, health_hours, operator_alembic_version"
        )


@contextlib.contextmanager
def postgres() -> Iterator[Postgres]:
    """PostgreSQL on a free loopback port, in a temporary directory removed afterwards."""
    tmp = Path(tempfile.mkdtemp(prefix="operator-history-pg-"))
    give_to(tmp, SERVER_USER)
    process: Process | None = None
    try:
        process, port = start_postgres(tmp)
        yield Postgres(port, process, tmp / "sock")
    finally:
        if process is not None:
            process.stop()
        shutil.rmtree(tmp, ignore_errors=True)
