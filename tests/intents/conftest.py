"""The intent tests run on the corpus configuration (`corpus.yaml`), read the way the CLI reads it."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.settings import catalog_settings
from intents import Catalog, Parser

CORPUS_CONFIG = Path(__file__).parent / "corpus.yaml"
"""Services, alert names, monitors and schedules the case files are written against."""


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return catalog_settings(CORPUS_CONFIG).catalog()


@pytest.fixture(scope="session")
def parser(catalog: Catalog) -> Parser:
    """Its own session parser: the root conftest's is built on the plain catalog, and whichever test
    asked first would decide which one a worker shares."""
    return Parser(catalog)
