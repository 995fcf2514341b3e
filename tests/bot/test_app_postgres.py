"""The audit history of the running service in a real PostgreSQL (DATABASE_URL set)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.bot.appserver import ALICE, STRANGER, message_of, serve, settings_for
from tests.bot.servers_history import Postgres, postgres

pytestmark = [pytest.mark.anyio, pytest.mark.servers]


@pytest.fixture(scope="module")
def postgres_server() -> Iterator[Postgres]:
    with postgres() as running:
        yield running


async def test_history_goes_to_postgresql_when_a_database_url_is_set(postgres_server: Postgres, tmp_path: Path) -> None:
    postgres_server.reset()
    settings = settings_for(tmp_path, DATABASE_URL=postgres_server.url())
    async with serve(settings) as bot:
        assert bot.webhook.history.database.backend == "postgresql"
        assert message_of(await bot.text("db conns?"))
        await bot.text("status", number=STRANGER)
        ready = await bot.client.get(f"{bot.url}/readyz")
    assert ready.json()["checks"]["history"] == "ok"
    rows = postgres_server.execute(
        "SELECT number, direction, intent, command, outcome FROM message_history ORDER BY id"
    )
    assert rows == [
        ("+1555***0001", "in", "db", "db connections", "ok"),
        ("+1555***0001", "out", "db", "db connections", "replied"),  # the TwiML reply, a text sent
        ("+1555***0000", "in", None, None, "rejected"),
    ]
    assert not (tmp_path / "history.sqlite3").exists()
    assert ALICE not in str(rows)
