"""Every alerting backend's alerts as one numbered list (`monitors.alert_lists`)."""

from __future__ import annotations

import time

import pytest

from monitors.alert_lists import gather_alerts
from monitors.base import Alert, AlertList, AlertQuery, Kind, MetricQuery, MetricResult
from monitors.errors import BackendTimeout, BackendUnavailable, BadBackendResponse
from tests.fakes import Scripted

pytestmark = pytest.mark.anyio
QUERY = AlertQuery("firing")


def alerting(name: str, *alerts: Alert, error: Exception | None = None) -> Scripted:
    return Scripted(name, system=name, kinds=frozenset({Kind.ALERTS}), error=error,
                    answer=AlertList(QUERY, alerts))  # fmt: skip


def alert(name: str, started: float, fingerprint: str, source: str = "") -> Alert:
    return Alert(name, {"alertname": name}, "firing", starts_at=started, fingerprint=fingerprint, source=source)


async def test_lists_are_merged_by_name_then_age_and_tagged_with_their_backend() -> None:
    am = alerting("alertmanager", alert("DiskFull", 20, "a1"), alert("HighCPU", 10, "a2"))
    grafana = alerting("grafana", alert("Errors", 5, "g1"), alert("HighCPU", 5, "g2"))
    gathered = await gather_alerts([am, grafana], QUERY)
    assert gathered.result is not None and gathered.failures == () and gathered.formatter is am
    got = [(a.name, a.fingerprint, a.source) for a in gathered.result.alerts]
    assert got == [("DiskFull", "a1", "alertmanager"), ("Errors", "g1", "grafana"),
                   ("HighCPU", "g2", "grafana"), ("HighCPU", "a2", "alertmanager")]  # fmt: skip


async def test_one_backend_keeps_its_own_order_and_a_source_it_already_set() -> None:
    only = alerting("alertmanager", alert("Zeta", 1, "z"), alert("Alpha", 2, "a", source="elsewhere"))
    gathered = await gather_alerts([only], QUERY)
    assert gathered.result is not None
    assert [(a.name, a.source) for a in gathered.result.alerts] == [("Zeta", "alertmanager"), ("Alpha", "elsewhere")]


async def test_a_failing_backend_is_kept_beside_what_the_others_said() -> None:
    down = BackendUnavailable("Alertmanager", "cannot connect")
    am = alerting("alertmanager", error=down)
    grafana = alerting("grafana", alert("Errors", 5, "g1"))
    gathered = await gather_alerts([am, grafana], QUERY)
    assert gathered.result is not None and [a.fingerprint for a in gathered.result.alerts] == ["g1"]
    assert gathered.failures == ((am, down),) and gathered.first_error() is down
    assert gathered.formatter is grafana


async def test_none_answering_gives_no_list_and_every_failure() -> None:
    wrong = Scripted("odd", system="odd", kinds=frozenset({Kind.ALERTS}),
                     answer=MetricResult(MetricQuery("cpu")))  # fmt: skip
    down = alerting("grafana", error=BackendUnavailable("Grafana", "cannot connect"))
    gathered = await gather_alerts([wrong, down], QUERY)
    assert gathered.result is None and gathered.formatter is None
    assert [m.name for m, _ in gathered.failures] == ["odd", "grafana"]
    assert isinstance(gathered.failures[0][1], BadBackendResponse)


async def test_past_the_deadline_only_the_backend_still_asking_is_named() -> None:
    am = alerting("alertmanager", alert("DiskFull", 20, "a1"))
    hung = Scripted("grafana", system="grafana", display="Grafana", kinds=frozenset({Kind.ALERTS}), delay_s=30,
                    timeout_s=30, answer=AlertList(QUERY, ()))  # fmt: skip
    started = time.monotonic()
    gathered = await gather_alerts([hung, am], QUERY, deadline_s=0.3)
    assert time.monotonic() - started < 2.0
    assert gathered.result is not None and [a.fingerprint for a in gathered.result.alerts] == ["a1"]
    [(monitor, error)] = gathered.failures
    assert monitor is hung and isinstance(error, BackendTimeout) and gathered.formatter is am
