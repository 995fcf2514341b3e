"""Fixtures shared by the bot's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers import Exporter, PrometheusServer, prometheus


@pytest.fixture(scope="module")
def watched(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Exporter, PrometheusServer]]:
    """A real Prometheus scraping an exporter whose `known{service="checkout"}` the test sets."""
    exporter = Exporter()
    exporter.known.labels("checkout").set(10)
    with prometheus(tmp_path_factory.mktemp("prom"), {"checkout": f"127.0.0.1:{exporter.port}"}) as server:
        yield exporter, server
    exporter.stop()
