"""The vocabulary the parser recognises, built from configuration.

Services, metric aliases and the everyday words for them, health systems, log levels, database
metrics, alert states and known alert names all come from here; the spaCy patterns and the typo
corrector are generated from it, so adding a service in the config file is all it takes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

DEFAULT_SERVICES = ("payment", "checkout", "auth", "search", "cart", "inventory", "api", "web")

DEFAULT_METRIC_WORDS: dict[str, tuple[str, ...]] = {
    "cpu": ("cpu", "cpus", "cpu usage", "cpu load", "cpu utilization", "cpu util", "processor", "processors",
            "load", "load average", "loadavg", "cores", "cpu%", "loaded"),
    "memory": ("memory", "mem", "ram", "heap", "rss", "memory usage", "mem usage", "memory pressure",
               "memory consumption", "ram usage"),
    "disk": ("disk", "disks", "disc", "disk space", "diskspace", "disk usage", "storage", "free space",
             "filesystem", "filesystems", "fs", "volume", "volumes", "inodes", "disk io", "iops"),
    "latency": ("latency", "latencies", "response time", "response times", "resp time", "slow", "slowness",
                "sluggish", "laggy", "lag", "p99", "p95", "p90", "p50", "p999", "tail latency", "how fast",
                "speed"),
    "error_rate": ("error rate", "error rates", "err rate", "error percentage", "error percent", "error %",
                   "errors %", "error ratio", "errors percentage", "errors rate", "failure rate", "fail rate",
                   "failure percentage", "5xx rate", "5xx ratio", "error_rate", "errorrate", "% errors",
                   "percent errors", "percentage of errors", "% of errors", "rate of errors",
                   "error budget", "success rate"),
    "requests": ("requests", "request", "request rate", "reqs", "req/s", "reqs/s", "req/sec", "requests/s",
                 "requests per second", "req per sec", "rps", "qps", "throughput", "traffic", "hits",
                 "request count", "request volume", "calls per second"),
    "up": ("up", "down", "uptime", "availability", "downtime", "up metric"),
}  # fmt: skip
"""Built-in metric aliases and the words people text for them (lowercase, phrases allowed)."""

DEFAULT_SERVICE_ALIASES: dict[str, tuple[str, ...]] = {
    "auth": ("authentication", "authn"),
    "web": ("website", "webapp", "web app", "web site"),
}
"""Other names people use for a default service; only applied to services that are configured."""

SERVICE_SUFFIXES = ("service", "svc", "srv", "app", "server", "servers", "backend", "prod", "pods", "pod",
                    "hosts", "host", "cluster", "nodes", "api", "boxes", "box", "instances", "fleet")  # fmt: skip
"""Generic words after a service ("payment-svc", "checkout hosts") that still mean that service."""

DEFAULT_SYSTEMS: dict[str, tuple[str, ...]] = {
    "prometheus": ("prometheus", "prom", "prometheus server"),
    "alertmanager": ("alertmanager", "alert manager", "alertmgr", "alert-manager"),
    "datadog": ("datadog", "data dog", "dd"),
    "newrelic": ("newrelic", "new relic"),
    "grafana": ("grafana",),
    "logs": ("logs", "log backend", "logging", "log store", "log pipeline", "kibana"),
    "database": ("database", "databases", "db", "dbs", "postgres", "postgresql", "pg", "psql", "db server",
                 "database server", "pooler"),
    "gateway": ("gateway", "api gateway", "apigw", "api gw", "gw", "ingress"),
    "host": ("host", "the host", "server", "box", "machine", "node", "localhost", "vm"),
}  # fmt: skip
"""The fixed health systems of the contract and the names people use for them."""

BACKEND_SYSTEMS: dict[str, tuple[str, ...]] = {
    "loki": ("loki",),
    "elasticsearch": ("elasticsearch", "elastic", "es", "opensearch"),
    "cloudwatch": ("cloudwatch", "cloud watch"),
    "pgbouncer": ("pgbouncer", "pg bouncer"),
    "kong": ("kong",),
}
"""Backends of the contract named outright ("health kong"). Each names the fixed system of its kind
(`BACKEND_KIND`): the contract's decision, since a user who texts "is kong healthy" asks about the
gateway whichever backend serves it. Only a monitor configured under that exact name with another
`type` (a Prometheus monitor called `kong`) makes the name a system of its own."""

BACKEND_KIND: dict[str, str] = {
    "loki": "logs", "elasticsearch": "logs", "cloudwatch": "logs", "pgbouncer": "database", "kong": "gateway",
}  # fmt: skip
"""The fixed health system each backend of `BACKEND_SYSTEMS` answers for."""


def fixed_systems(own_names: Iterable[str] = ()) -> dict[str, tuple[str, ...]]:
    """The fixed systems, each with the names of the backends of its kind, except backends in `own_names`
    (configured under that name with another type), which are left out to become systems of their own."""
    systems = {name: list(words) for name, words in DEFAULT_SYSTEMS.items()}
    for backend, words in BACKEND_SYSTEMS.items():
        if backend not in own_names:
            systems[BACKEND_KIND[backend]].extend(words)
    return {name: _unique(words) for name, words in systems.items()}


LEVEL_WORDS: dict[str, tuple[str, ...]] = {
    "error": ("error", "errors", "err", "errs", "exception", "exceptions", "failure", "failures", "failed",
              "failing", "fails", "fail", "5xx", "5xxs", "crash", "crashes", "crashed", "crashing", "errored",
              "erroring", "500s", "502s", "503s", "504s"),
    "warn": ("warn", "warns", "warning", "warnings", "wrn"),
    "info": ("info", "infos", "informational"),
}  # fmt: skip
"""Words that set `level`; the contract forbids keeping them as search terms too."""

DB_METRIC_WORDS: dict[str, tuple[str, ...]] = {
    "connections": ("connections", "connection", "conns", "conn", "connection count", "open connections",
                    "active connections", "db connections", "sessions"),
    "pools": ("pools", "pool", "pool saturation", "pool usage", "connection pool", "connection pools",
              "pool stats", "saturation", "pool status"),
    "stats": ("stats", "statistics", "query stats", "queries", "queries per second", "transactions",
              "query rate", "query time", "query times", "slow queries", "tps"),
    "clients": ("clients", "client", "client list", "client connections", "waiting clients",
                "connected clients", "who is connected", "whos connected", "who is currently connected",
                "whos currently connected", "who is hitting", "whos hitting", "who is using", "whos using",
                "which clients", "who is on the database", "whos on the db", "who is talking to",
                "whos talking to", "who is connecting", "whos connecting"),
}  # fmt: skip

ALERT_STATE_WORDS: dict[str, tuple[str, ...]] = {
    "firing": ("firing", "active", "going off", "open", "triggered", "fired", "ringing", "currently firing",
               "unresolved", "unacked", "ongoing", "current"),
    "silenced": ("silenced", "muted", "snoozed", "suppressed", "silences", "mutes", "on mute"),
    "all": ("all alerts", "all the alerts", "every alert", "all alarms", "all of them", "all", "everything",
            "including silenced", "incl silenced", "even silenced"),
}  # fmt: skip

DEFAULT_ALERT_NAMES = (
    "HighCPU", "HighMemory", "HighLatency", "HighErrorRate", "HighLoad", "DiskFull", "DiskSpaceLow",
    "DiskWillFillIn4Hours", "InstanceDown", "TargetDown", "ServiceDown", "SSLCertExpiring",
    "CertificateExpiring", "PodCrashLooping", "KubePodCrashLooping", "KubePodNotReady", "NodeNotReady",
    "Watchdog", "HostOutOfMemory", "HostHighCpuLoad", "PostgresDown", "PgbouncerDown", "RedisDown",
    "TooManyConnections", "ApiDown", "HighRequestRate", "QueueBacklog",
)  # fmt: skip
"""Common Prometheus alert names, recognised even when typed all in lowercase."""


@dataclass(frozen=True)
class Catalog:
    """Everything the parser can name. Immutable; build one per configuration."""

    services: tuple[str, ...] = DEFAULT_SERVICES
    metrics: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: dict(DEFAULT_METRIC_WORDS))
    """Metric alias -> the words and phrases that mean it (the alias itself included)."""
    service_aliases: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: dict(DEFAULT_SERVICE_ALIASES))
    systems: Mapping[str, tuple[str, ...]] = field(default_factory=fixed_systems)
    """Health system -> its names; custom monitors add their configured name."""
    alert_names: tuple[str, ...] = DEFAULT_ALERT_NAMES
    schedules: tuple[str, ...] = ()
    """On-call schedule names (the keys of `schedules:`), lowercase; what `oncall` and `take` name."""

    def __hash__(self) -> int:
        """By value, like equality (the mappings are never changed after construction): catalogs key the
        entity rules built from them."""
        return hash(repr(self))

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Catalog:
        """Build from the configuration keys of the contract (`services:`, `metrics:`) and the additive ones.

        `metrics:` maps an alias to a PromQL template (a string) or to `{query: ..., words: [...]}`;
        built-in aliases keep their everyday words. `monitors:` entries that are not fixed systems
        become health systems under their own name (a backend's name too, when its section has another
        `type`); `alert_names:` adds known alert names; `schedules:` names the on-call rotations.
        """
        services = tuple(str(s).strip().lower() for s in config.get("services") or DEFAULT_SERVICES)
        metrics: dict[str, tuple[str, ...]] = {}
        configured = config.get("metrics") or {alias: "" for alias in DEFAULT_METRIC_WORDS}
        for alias, spec in configured.items():
            alias = str(alias).strip().lower()
            words = list(DEFAULT_METRIC_WORDS.get(alias, ()))
            if isinstance(spec, Mapping):
                words.extend(str(w).lower() for w in spec.get("words") or ())
            metrics[alias] = _unique([alias, alias.replace("_", " "), *words])
        for alias, defaults in DEFAULT_METRIC_WORDS.items():
            metrics.setdefault(alias, _unique([alias, *defaults]))
        aliases = {svc: names for svc, names in DEFAULT_SERVICE_ALIASES.items() if svc in services}
        for svc, names in (config.get("service_aliases") or {}).items():
            if str(svc).lower() in services:
                aliases[str(svc).lower()] = _unique(str(n).lower() for n in names)
        monitors: Mapping[str, Any] = config.get("monitors") or {}
        own: dict[str, str] = {}
        for key, section in monitors.items():
            name = str(key).strip().lower()
            kind = str(section.get("type") or name).strip().lower() if isinstance(section, Mapping) else name
            if name in BACKEND_SYSTEMS and kind != name:
                own[name] = name  # `kong: {type: prometheus}`: "kong" is that monitor, not the gateway
            elif name not in DEFAULT_SYSTEMS and not _is_fixed_backend(name):
                own[name] = name
        systems = fixed_systems(own)
        for name in own:
            systems.setdefault(name, (name,))
        alert_names = _unique([*DEFAULT_ALERT_NAMES, *(str(a) for a in config.get("alert_names") or ())])
        schedules = _unique(str(s).strip().lower() for s in config.get("schedules") or ())
        return cls(
            services=services,
            metrics=metrics,
            service_aliases=aliases,
            systems=systems,
            alert_names=alert_names,
            schedules=schedules,
        )

    @cached_property
    def single_words(self) -> Mapping[str, Mapping[str, str]]:
        """One-word names per slot kind -> canonical value, for the strict syntax ("errors" -> error)."""
        tables: dict[str, Mapping[str, tuple[str, ...]]] = {
            "metric": self.metrics,
            "system": self.systems,
            "level": LEVEL_WORDS,
            "db": DB_METRIC_WORDS,
            "state": ALERT_STATE_WORDS,
        }
        lookup: dict[str, Mapping[str, str]] = {}
        for kind, table in tables.items():
            words: dict[str, str] = {}
            for value, names in table.items():
                words[value] = value
                for name in names:
                    if " " not in name:
                        words.setdefault(name, value)
            lookup[kind] = words
        lookup["service"] = {s: s for s in self.services}
        return lookup

    @cached_property
    def vocabulary(self) -> frozenset[str]:
        """Every word of every name the catalog knows (never "corrected" into something else)."""
        words: set[str] = set(self.schedule_words)
        for service in self.services:
            words |= {service, f"{service}s"}
        for table in (self.metrics, self.systems, self.service_aliases, LEVEL_WORDS, DB_METRIC_WORDS,
                      ALERT_STATE_WORDS):  # fmt: skip
            for names in table.values():
                for name in names:
                    words.update(name.split())
        return frozenset(words)

    def lookup(self, kind: str, word: str) -> str | None:
        return self.single_words[kind].get(word.lower())

    @cached_property
    def schedule_words(self) -> Mapping[str, str]:
        """Words that name a schedule -> its name: the name and its singular ("payment" -> payments),
        hyphens and underscores read as spaces would be ("on-call" style names typed either way)."""
        words: dict[str, str] = {}
        for name in self.schedules:
            for form in (name, name.replace("-", ""), name.replace("_", "")):
                words.setdefault(form, name)
                if form.endswith("s") and len(form) > 3:
                    words.setdefault(form[:-1], name)
        return words

    def schedule(self, word: str) -> str | None:
        """The schedule a word names, or None."""
        return self.schedule_words.get(word.lower())

    @cached_property
    def _alert_casing(self) -> Mapping[str, str]:
        return {name.lower(): name for name in self.alert_names}

    def alert_name(self, text: str) -> str:
        """An alert as the user typed it, unless it is a known alert name: then its configured casing
        (the contract's decision: "ack highcpu" acks HighCPU, "ack MyCustomAlert" keeps the user's)."""
        return self._alert_casing.get(text.lower(), text)


_BACKEND_SYSTEM = {
    "prometheus": "prometheus", "alertmanager": "alertmanager", "datadog": "datadog", "newrelic": "newrelic",
    "grafana": "grafana",
    "loki": "logs", "elasticsearch": "logs", "cloudwatch": "logs", "pgbouncer": "database", "postgres": "database",
    "kong": "gateway", "apigateway": "gateway", "host": "host",
}  # fmt: skip
"""Backend sections of `monitors:` and the fixed health system each one answers for."""


def _is_fixed_backend(name: str) -> bool:
    return name in _BACKEND_SYSTEM


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(i for i in items if i))
