"""Shared fixtures: one parser per session (building spaCy and the word list takes ~1 s)."""

from __future__ import annotations

import pytest

from intents import Catalog, Parser


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return Catalog()


@pytest.fixture(scope="session")
def parser(catalog: Catalog) -> Parser:
    return Parser(catalog)


@pytest.fixture
def anyio_backend() -> str:
    """Async tests (`@pytest.mark.anyio`) run on asyncio, like the bot."""
    return "asyncio"
