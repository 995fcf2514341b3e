"""Monitors by name, built from the `monitors:` config sections; a name used twice is an error.

Each section name is a backend type ("prometheus", "loki") or any name with a `type:` key
("orders_api: {type: http, …}", "prom_eu: {type: prometheus, …}"). Adapter modules are imported
only when configured, so an install without AWS never loads boto3.

Building a monitor starts nothing: a monitor with work of its own (the host's CPU sampler) is a
`Running` one, started by `MonitorRegistry.start()` once the event loop runs and stopped by `stop()`
(the runtime does both), so no task or thread exists at import or construction.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import httpx
from pydantic import BaseModel, ValidationError

from monitors import keys
from monitors.base import AlertWriter, Kind, Monitor
from monitors.resilience import CircuitBreaker, Guarded

ADAPTERS: dict[str, str] = {
    "prometheus": "monitors.prometheus",
    "alertmanager": "monitors.alertmanager",
    "grafana": "monitors.grafana",
    "pgbouncer": "monitors.pgbouncer",
    "loki": "monitors.loki",
    "elasticsearch": "monitors.elasticsearch",
    "datadog": "monitors.datadog",
    "newrelic": "monitors.newrelic",
    "kong": "monitors.kong",
    "cloudwatch": "monitors.cloudwatch",
    "apigateway": "monitors.apigateway",
    "http": "monitors.custom_http",
    "host": "monitors.host",
}
"""Backend type -> the module whose `build(name, config, context)` makes its monitor."""

PRIORITY: dict[Kind, tuple[str, ...]] = {
    Kind.METRICS: ("prometheus", "datadog", "newrelic", "cloudwatch", "http", "host"),
    Kind.LOGS: ("loki", "elasticsearch", "datadog", "newrelic", "cloudwatch", "http"),
    Kind.DB: ("pgbouncer", "http"),
    Kind.GATEWAY: ("kong", "apigateway", "http"),
    Kind.ALERTS: ("alertmanager", "grafana"),
}
"""Which backend answers first when several could: the most specific source of truth."""


@dataclass(frozen=True)
class BuildContext:
    """What adapters may need besides their own section: the shared client, templates, secrets."""

    client: httpx.AsyncClient
    metric_templates: Mapping[str, str] = field(default_factory=dict)
    secrets: Mapping[str, str] = field(default_factory=dict)
    """Secret values by setting name (datadog_api_key …), read from the environment only."""


class Builder(Protocol):
    def __call__(self, name: str, config: Mapping[str, Any], context: BuildContext) -> Monitor: ...


@runtime_checkable
class Running(Protocol):
    """A monitor with background work, started and stopped with the registry."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class MonitorConfigError(ValueError):
    """A `monitors:` section cannot be used; the message names the section, never its values."""


class DuplicateMonitor(MonitorConfigError):
    pass


class MonitorRegistry:
    def __init__(self) -> None:
        self._monitors: dict[str, Monitor] = {}
        self._types: dict[str, str] = {}

    def register(self, monitor: Monitor, backend_type: str) -> None:
        if monitor.name in self._monitors:
            raise DuplicateMonitor(f"monitor {monitor.name!r} is configured twice")
        self._monitors[monitor.name] = monitor
        self._types[monitor.name] = backend_type

    async def start(self) -> None:
        """Starts the background work of the monitors that have some (stops what started if one fails)."""
        started: list[Running] = []
        try:
            for running in self._running():
                await running.start()
                started.append(running)
        except BaseException:
            for running in reversed(started):
                await running.stop()
            raise

    async def stop(self) -> None:
        for running in reversed(list(self._running())):
            await running.stop()

    def _running(self) -> Iterator[Running]:
        for monitor in self._monitors.values():
            inner = monitor.inner if isinstance(monitor, Guarded) else monitor
            if isinstance(inner, Running):
                yield inner

    def __iter__(self) -> Iterator[Monitor]:
        return iter(self._monitors.values())

    def __len__(self) -> int:
        return len(self._monitors)

    def get(self, name: str) -> Monitor | None:
        return self._monitors.get(name)

    def type_of(self, monitor: Monitor) -> str:
        return self._types[monitor.name]

    def for_kind(self, kind: Kind) -> list[Monitor]:
        """Monitors that answer this kind of question, the preferred one first."""
        order = PRIORITY.get(kind, ())
        able = [m for m in self._monitors.values() if kind in m.kinds]
        return sorted(able, key=lambda m: order.index(self._types[m.name]) if self._types[m.name] in order else 99)

    def alert_writer(self, source: str | None = None) -> AlertWriter | None:
        """The alerting backend that can silence, as registered (behind its deadline and breaker): one of
        the alert's `source` type when there is one (a Grafana alert is silenced in Grafana even with
        Alertmanager configured too), else the preferred one."""
        writers = self.alert_writers(source)
        return writers[0] if writers else None

    def alert_writers(self, source: str | None = None) -> list[AlertWriter]:
        """Every backend that can silence, those of type `source` first, then in preference order (a
        silence id alone does not say where it was made: `unsilence` asks each in turn)."""
        writers: list[tuple[Monitor, AlertWriter]] = []
        for monitor in self.for_kind(Kind.ALERTS):
            if isinstance(monitor, Guarded):
                if monitor.writes_alerts:
                    writers.append((monitor, monitor))
            elif isinstance(monitor, AlertWriter):
                writers.append((monitor, monitor))
        writers.sort(key=lambda pair: self._types[pair[0].name] != source)  # stable: preference kept
        return [writer for _, writer in writers]

    def for_system(self, system: str) -> list[Monitor]:
        """Monitors a `health <system>` asks: by fixed system, by type ("kong") or by name."""
        return [m for m in self._monitors.values() if system in (m.system, m.name, self._types[m.name])]


def build_monitors(
    sections: Mapping[str, Mapping[str, Any] | None], context: BuildContext, guard: bool = True
) -> MonitorRegistry:
    """Every configured monitor, each behind its deadline and circuit breaker."""
    registry = MonitorRegistry()
    for name, raw in sections.items():
        config = dict(raw or {})
        backend_type = str(config.pop("type", name))
        module_name = ADAPTERS.get(backend_type)
        if module_name is None:
            guess = keys.closest(backend_type, ADAPTERS)
            hint = f"did you mean {guess}?" if guess else f"one of {', '.join(sorted(ADAPTERS))}"
            raise MonitorConfigError(f"monitor {name!r}: unknown type {backend_type!r} ({hint})")
        module = importlib.import_module(module_name)
        builder: Builder = module.build
        try:
            monitor = builder(name, config, context)
        except ValidationError as exc:
            raise MonitorConfigError(_invalid(name, exc, getattr(module, exc.title, None))) from exc
        registry.register(Guarded(monitor, CircuitBreaker()) if guard else monitor, backend_type)
    return registry


def check_sections(
    sections: Mapping[str, Mapping[str, Any] | None],
    metric_templates: Mapping[str, str] | None = None,
    secrets: Mapping[str, str] | None = None,
) -> list[str]:
    """What is wrong with each `monitors:` section (unknown keys and types, bad values), found at start-up
    by building every monitor once on a client that sends nothing, and dropping it: so `operator serve`
    refuses a misspelled `timout_s` in one line before it binds a port, not in its lifespan."""
    client = httpx.AsyncClient(transport=httpx.MockTransport(lambda request: httpx.Response(503)))
    context = BuildContext(client, metric_templates or {}, secrets or {})
    problems: list[str] = []
    for name, raw in sections.items():
        try:
            build_monitors({name: raw}, context, guard=False)
        except MonitorConfigError as exc:
            problems.append(str(exc))
    return problems


def _invalid(name: str, error: ValidationError, model: object) -> str:
    """ "monitor 'loki': invalid url" for bad values (never echoed), and for a key the section's model
    does not have, its path and the closest valid key: "monitors.prometheus.timout_s: unknown (did you
    mean timeout_s?)"."""
    unknown: list[str] = []
    invalid: set[str] = set()
    for detail in error.errors():
        loc = tuple(detail["loc"])
        if detail["type"] == "extra_forbidden" and loc and isinstance(model, type) and issubclass(model, BaseModel):
            path = ".".join(str(p) for p in ("monitors", name, *loc))
            unknown.append(keys.unknown(path, str(loc[-1]), keys.keys_at(model, loc[:-1])))
        else:
            invalid.add(".".join(str(p) for p in loc))
    lines = [f"monitor {name!r}: invalid {', '.join(sorted(invalid))}"] if invalid else []
    return "; ".join(lines + unknown)
