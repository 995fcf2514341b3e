"""Read-only monitoring commands: status, health, metrics, logs, db, gateway, graph.

Each asks the preferred configured monitor for its kind of question and replies with that
monitor's own short formatting; any backend failure becomes one line via `describe`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace

from bot.charts.media import media_url
from bot.charts.scales import title_for
from bot.charts.text import chart_text
from bot.core.commands.registry import Answer, Request, command
from bot.state.protocols import StoreUnavailable
from intents.models import seconds_of, terms_of
from monitors.alert_lists import Gathered, gather_alerts
from monitors.base import (
    AlertList,
    AlertQuery,
    DbQuery,
    GatewayQuery,
    Kind,
    LogQuery,
    MetricQuery,
    MetricResult,
    Monitor,
    Query,
)
from monitors.errors import BackendError, NotConfigured, describe
from monitors.formatting import duration
from monitors.registry import MonitorRegistry
from monitors.resilience import Checked, fan_out

log = logging.getLogger(__name__)

DEFAULT_LOG_RANGE_S = 3600
DEFAULT_GRAPH_RANGE_S = 3600
HINTS = {
    Kind.METRICS: "Add prometheus, datadog or host under monitors: in the config.",
    Kind.LOGS: "Add loki, elasticsearch, datadog or cloudwatch under monitors:.",
    Kind.DB: "Add pgbouncer (or an http monitor with kind: db) under monitors:.",
    Kind.GATEWAY: "Add kong or apigateway under monitors:.",
    Kind.ALERTS: "Add alertmanager or grafana under monitors:.",
}
WHAT = {Kind.METRICS: "metrics backend", Kind.LOGS: "logs backend", Kind.DB: "database monitor",
        Kind.GATEWAY: "gateway monitor", Kind.ALERTS: "alerting backend"}  # fmt: skip


def _monitors(request: Request) -> MonitorRegistry:
    registry = request.services.monitors
    return registry


async def ask(request: Request, kind: Kind, query: Query) -> tuple[Monitor | None, object, str]:
    """(monitor, result or None, reply text) from the preferred monitor of `kind`."""
    candidates = _monitors(request).for_kind(kind)
    if not candidates:
        return None, None, describe(NotConfigured(WHAT[kind], HINTS[kind]))
    monitor = candidates[0]
    try:
        result = await monitor.query(query)
    except BackendError as exc:
        metrics = request.services.metrics
        if metrics is not None:
            metrics.backend_errors.labels(monitor.name).inc()
        return monitor, None, describe(exc)
    return monitor, result, monitor.format(result)


def _health_line(checked: Checked) -> str:
    age = f" ({duration(checked.age_s)} ago)" if checked.age_s >= 1 else ""
    if checked.error is not None:
        return describe(checked.error, checked.monitor.display) + age
    assert checked.health is not None
    state = "ok" if checked.health.ok else "NOT OK"
    detail = f", {checked.health.detail}" if checked.health.detail else ""
    return f"{checked.monitor.display}: {state}{detail}{age}"


async def _check(request: Request, monitors: list[Monitor]) -> list[Checked]:
    settings = request.services.settings
    cache = request.services.health_cache
    return await fan_out(monitors, cache, settings.status_deadline_s)


@command("status", usage="status")
async def status(request: Request) -> Answer:
    """Which backends are up (one line), a line for each that is not, then what is firing.

    Kept to a couple of SMS: details of healthy backends are for `health`. The firing-alerts query runs
    beside the health checks under the same deadline: one after the other, a hung Alertmanager cost two
    timeouts and said "timed out" twice. A backend whose health already failed gets no second line.
    """
    registry = _monitors(request)
    monitors = list(registry)
    if not monitors:
        return Answer("No monitors are configured. Add some under monitors: in the config.")
    deadline_s = request.services.settings.status_deadline_s
    alerting = registry.for_kind(Kind.ALERTS)
    firing = asyncio.ensure_future(_gather(request, alerting, AlertQuery("firing"), deadline_s)) if alerting else None
    try:
        checked = await _check(request, monitors)
    except BaseException:
        if firing is not None:
            firing.cancel()
        raise
    bad = [c for c in checked if c.error is not None or (c.health is not None and not c.health.ok)]
    good = [c for c in checked if c not in bad]
    oldest = max((c.age_s for c in good), default=0.0)
    age = f" (as of {duration(oldest)} ago)" if oldest >= 1 else ""
    names = ", ".join(c.monitor.display for c in good)
    head = f"{len(good)}/{len(checked)} backends ok" + (f": {names}{age}" if good else ".")
    lines = [head, *(_health_line(c) for c in bad)]
    if firing is not None:
        lines.extend(_firing_lines(await firing, {c.monitor.name for c in bad}))
    return Answer("\n".join(lines))


async def _gather(
    request: Request, alerting: list[Monitor], query: AlertQuery, deadline_s: float | None = None
) -> Gathered:
    """Every alerting backend's answer, failures counted per backend."""
    gathered = await gather_alerts(alerting, query, deadline_s)
    metrics = request.services.metrics
    if metrics is not None:
        for monitor, _ in gathered.failures:
            metrics.backend_errors.labels(monitor.name).inc()
    return gathered


def _firing_lines(gathered: Gathered, failed: set[str]) -> list[str]:
    """What is firing, and which backend could not say (timed out under the status deadline, or failed);
    a backend whose health already failed gets no second line."""
    lines = [describe(exc) for monitor, exc in gathered.failures if monitor.name not in failed]
    if gathered.result is not None:
        lines.append(_alerts_summary(gathered.result))
    return lines


def _alerts_summary(result: AlertList) -> str:
    if not result.alerts:
        return "No alerts firing."
    names = ", ".join(dict.fromkeys(a.name for a in result.alerts))
    return f"{len(result.alerts)} firing: {names}"


@command("health", usage="health [system]")
async def health(request: Request) -> Answer:
    """Checks a backend is reachable: prometheus, alertmanager, datadog, logs, database, gateway, host."""
    system = request.parse.slots.get("system")
    monitors = _monitors(request).for_system(str(system)) if system else list(_monitors(request))
    if not monitors:
        what = f"{system} monitor" if system else "monitor"
        return Answer(describe(NotConfigured(what, "Add it under monitors: in the config.")))
    return Answer("\n".join(_health_line(c) for c in await _check(request, monitors)))


def _metric_query(request: Request, default_range: int | None = None) -> MetricQuery:
    slots = request.parse.slots
    settings = request.services.settings
    metric = str(slots["metric"])
    service = slots.get("service")
    return MetricQuery(
        metric=metric,
        service=str(service) if service else None,
        range_s=seconds_of(slots, "range_s") or default_range,
        raw=metric not in settings.metrics,
    )


@command("metrics", usage="metrics <metric> [service] [range]")
async def metrics(request: Request) -> Answer:
    """A metric now, or over a range: "metrics cpu service=checkout range=1h", "latency on auth 6h"."""
    _, _, text = await ask(request, Kind.METRICS, _metric_query(request))
    return Answer(text)


@command("graph", usage="graph <metric> [service] [range]")
async def graph(request: Request) -> Answer:
    """A chart of a metric over time, sent as a picture: "graph latency service=payment range=6h"."""
    query = _metric_query(request, DEFAULT_GRAPH_RANGE_S)
    _, result, text = await ask(request, Kind.METRICS, query)
    if not isinstance(result, MetricResult) or not result.series:
        return Answer(text)  # a failure, or a backend that only answers "now": the line already says it
    title = title_for(query.metric, query.service, query.range_s)
    url = await _chart_url(request, result, title)
    if url is None:
        return Answer(chart_text(result.series, title=title, unit=result.unit))
    return Answer(text, media=(url,))


async def _chart_url(request: Request, result: MetricResult, title: str) -> str | None:
    """The chart rendered and stored for Twilio to fetch, or None to send it as text: MMS off, no public
    URL (Twilio could not fetch it), no store (the terminal chat), or the store or renderer failing."""
    settings = request.services.settings
    store = request.services.media
    renderer = request.services.charts
    if not (settings.mms and settings.public_url and store is not None and renderer is not None):
        return None
    try:
        png = await renderer.png(result.series, title=title, unit=result.unit, width_px=settings.graph_width_px,
                                 height_px=settings.graph_height_px, now=time.time())  # fmt: skip
        token = await store.put(png)
    except (StoreUnavailable, ValueError, RuntimeError) as exc:
        log.warning("chart not sent as a picture (%s); sending text", type(exc).__name__)
        return None
    return media_url(settings.public_url, token)


@command("logs", usage="logs [words] [service] [level] [range]")
async def logs(request: Request) -> Answer:
    """Newest matching log lines: "logs timeout service=payment level=error range=30m"."""
    slots = request.parse.slots
    service, level = slots.get("service"), slots.get("level")
    query = LogQuery(
        terms=terms_of(slots),
        service=str(service) if service else None,
        level=str(level) if level else None,
        range_s=seconds_of(slots, "range_s") or DEFAULT_LOG_RANGE_S,
    )
    _, _, text = await ask(request, Kind.LOGS, query)
    return Answer(text)


@command("db", usage="db [connections|pools|stats|clients]")
async def db(request: Request) -> Answer:
    """Database pool figures from pgBouncer: active, idle and waiting connections, queries per second."""
    metric = request.parse.slots.get("metric")
    _, _, text = await ask(request, Kind.DB, DbQuery(str(metric) if metric else None))
    return Answer(text)


@command("gateway", usage="gateway [status|route]")
async def gateway(request: Request) -> Answer:
    """API gateway status, or one route's numbers: "gateway status", "gateway checkout"."""
    endpoint = request.parse.slots.get("endpoint")
    _, _, text = await ask(request, Kind.GATEWAY, GatewayQuery(str(endpoint) if endpoint else None))
    return Answer(text)


@command("alerts", usage="alerts [firing|silenced|all]")
async def alerts(request: Request) -> Answer:
    """Open alerts of every alerting backend in one list, numbered so you can reply "ack 2" or
    "silence 2 1h"; a backend that could not answer says so in a line above the list."""
    state = request.parse.slots.get("state")
    alerting = _monitors(request).for_kind(Kind.ALERTS)
    if not alerting:
        return Answer(describe(NotConfigured(WHAT[Kind.ALERTS], HINTS[Kind.ALERTS])))
    gathered = await _gather(request, alerting, AlertQuery(str(state) if state else None))
    problems = [describe(exc) for _, exc in gathered.failures]
    if gathered.result is None or gathered.formatter is None:
        return Answer("\n".join(problems))
    text = "\n".join([*problems, gathered.formatter.format(gathered.result)])
    if gathered.result.alerts:
        numbered = tuple(a.fingerprint or a.name for a in gathered.result.alerts)
        return Answer(text, replace(request.context, alerts=numbered))
    return Answer(text)
