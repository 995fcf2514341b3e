"""One list of open alerts from every alerting backend configured (Alertmanager, Grafana, …).

A team that routes Prometheus alerts through Alertmanager and Grafana-managed rules through Grafana has
one pager, not two: `alerts`, the firing line of `status` and "ack 2" must see both. Each backend is
asked at once, behind its own deadline and breaker (and, for `status`, under one overall deadline); the
answers are merged into one numbered list (the order every backend already sorts by), each alert tagged
with the system it came from so a silence is made where the alert lives. A backend that fails or runs
out of time does not hide what the others said: its error is kept beside the list, to be said in one
line, naming that backend and no other.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, replace

from monitors.base import Alert, AlertList, AlertQuery, Monitor
from monitors.errors import BackendError, BackendTimeout, BadBackendResponse


@dataclass(frozen=True)
class Gathered:
    """What the alerting backends said together."""

    result: AlertList | None
    """Every answering backend's alerts, numbered in this order; None when none answered."""
    failures: tuple[tuple[Monitor, BackendError], ...] = ()
    """The backends that could not answer, in preference order."""
    formatter: Monitor | None = None
    """The monitor whose formatting the merged list takes (the first that answered)."""

    def first_error(self) -> BackendError | None:
        return self.failures[0][1] if self.failures else None


def order(alert: Alert) -> tuple[str, float, str, str]:
    """By name, then oldest first: the order each backend's own list has, kept across backends."""
    return alert.name, alert.starts_at if alert.starts_at is not None else 0.0, alert.source, alert.fingerprint


async def gather_alerts(monitors: Sequence[Monitor], query: AlertQuery, deadline_s: float | None = None) -> Gathered:
    """Asks every monitor in `monitors` (the alerting ones, preferred first) at once; one still asking
    after `deadline_s` is cancelled and counts as timed out."""
    if not monitors:
        return Gathered(None)
    tasks = [asyncio.ensure_future(_ask(monitor, query)) for monitor in monitors]
    try:
        _, pending = await asyncio.wait(tasks, timeout=deadline_s)
    except BaseException:
        for task in tasks:
            task.cancel()
        raise
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)
    alerts: list[Alert] = []
    failures: list[tuple[Monitor, BackendError]] = []
    formatter: Monitor | None = None
    for monitor, task in zip(monitors, tasks, strict=True):
        answer = BackendTimeout(monitor.display, deadline_s or 0.0) if task in pending else task.result()
        if isinstance(answer, BackendError):
            failures.append((monitor, answer))
            continue
        formatter = formatter or monitor
        alerts.extend(alert if alert.source else replace(alert, source=monitor.system) for alert in answer.alerts)
    if formatter is None:
        return Gathered(None, tuple(failures))
    if len(monitors) > 1:
        alerts.sort(key=order)
    return Gathered(AlertList(query, tuple(alerts)), tuple(failures), formatter)


async def _ask(monitor: Monitor, query: AlertQuery) -> AlertList | BackendError:
    try:
        result = await monitor.query(query)
    except BackendError as exc:
        return exc
    if not isinstance(result, AlertList):
        return BadBackendResponse(monitor.display, "not an alert list")
    return result
