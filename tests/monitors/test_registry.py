from __future__ import annotations

import pytest

from monitors.base import Kind
from monitors.host import Host, HostConfig
from monitors.http import new_client
from monitors.registry import BuildContext, DuplicateMonitor, MonitorConfigError, MonitorRegistry, build_monitors
from monitors.resilience import Guarded

pytestmark = pytest.mark.anyio


async def test_sections_become_guarded_monitors_by_name_and_type() -> None:
    async with new_client() as client:
        registry = build_monitors(
            {
                "host": {},
                "prom_eu": {"type": "prometheus", "url": "http://127.0.0.1:9"},
                "prometheus": {"url": "http://127.0.0.1:9"},
            },
            BuildContext(client, {"cpu": "x"}),
        )
    assert [m.name for m in registry] == ["host", "prom_eu", "prometheus"]
    assert all(isinstance(m, Guarded) for m in registry)
    assert [m.name for m in registry.for_kind(Kind.METRICS)] == ["prom_eu", "prometheus", "host"]  # most specific first
    assert [m.name for m in registry.for_system("prometheus")] == ["prom_eu", "prometheus"]
    assert registry.for_kind(Kind.LOGS) == []


async def test_unknown_types_and_bad_sections_are_refused_by_name_only() -> None:
    async with new_client() as client:
        with pytest.raises(MonitorConfigError, match="unknown type 'graphite'"):
            build_monitors({"metricsdb": {"type": "graphite"}}, BuildContext(client))
        with pytest.raises(MonitorConfigError, match="monitor 'prometheus': invalid url") as caught:
            build_monitors({"prometheus": {"timeout_s": 1}}, BuildContext(client))
        assert "http" not in str(caught.value)
        with pytest.raises(MonitorConfigError, match="invalid timeout_s"):
            build_monitors({"prometheus": {"url": "http://secret-host:9090", "timeout_s": -1}}, BuildContext(client))


def test_a_name_used_twice_is_an_error() -> None:
    registry = MonitorRegistry()
    registry.register(Host("host", HostConfig()), "host")
    with pytest.raises(DuplicateMonitor):
        registry.register(Host("host", HostConfig()), "host")
