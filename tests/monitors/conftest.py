"""Servers shared by the monitor tests: started once per session on free loopback ports."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import Exporter, FaultServer, PrometheusServer, prometheus

MIB = 2**20


@pytest.fixture(scope="session")
def exporter() -> Iterator[Exporter]:
    exporter = Exporter()
    exporter.memory.labels("checkout").set(512 * MIB)
    exporter.memory.labels("payment").set(128 * MIB)
    exporter.known.labels("checkout").set(42)
    exporter.cpu.labels("checkout").inc(10)
    exporter.requests.labels("checkout", "200").inc(100)
    exporter.requests.labels("checkout", "500").inc(5)
    for _ in range(20):
        exporter.latency.labels("checkout").observe(0.2)
    yield exporter
    exporter.stop()


@pytest.fixture(scope="session")
def prometheus_server(exporter: Exporter, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    with prometheus(tmp_path_factory.mktemp("prometheus"), {"checkout": f"127.0.0.1:{exporter.port}"}) as server:
        yield server


@pytest.fixture
def fault_server() -> Iterator[FaultServer]:
    server = FaultServer()
    yield server
    server.stop()


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    return tmp_path
