"""The `Monitor` protocol every backend adapter implements, and the values that cross it.

Commands ask a kind of question (metrics, logs, db, gateway, alerts) with a small query value;
an adapter answers with a result value and knows how to write it as a short SMS. Health is
asked of every monitor the same way, so `status` can fan out over all of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, runtime_checkable


class Kind(StrEnum):
    """The kinds of question a monitor can answer (besides health, which all answer)."""

    METRICS = "metrics"
    LOGS = "logs"
    DB = "db"
    GATEWAY = "gateway"
    ALERTS = "alerts"


@dataclass(frozen=True)
class MetricQuery:
    metric: str
    """A metric alias (`cpu`) or, when `raw`, the user's own expression."""
    service: str | None = None
    range_s: int | None = None
    raw: bool = False


@dataclass(frozen=True)
class LogQuery:
    terms: tuple[str, ...] = ()
    service: str | None = None
    level: str | None = None
    range_s: int = 3600
    limit: int = 5


@dataclass(frozen=True)
class DbQuery:
    metric: str | None = None
    """connections, pools, stats, clients (None: a summary)."""


@dataclass(frozen=True)
class GatewayQuery:
    endpoint: str | None = None
    """"status", a route or service name, or None for the overview."""


@dataclass(frozen=True)
class AlertQuery:
    state: str | None = None
    """firing, silenced, all (None: firing)."""


Query = MetricQuery | LogQuery | DbQuery | GatewayQuery | AlertQuery

KIND_OF: dict[type, Kind] = {
    MetricQuery: Kind.METRICS,
    LogQuery: Kind.LOGS,
    DbQuery: Kind.DB,
    GatewayQuery: Kind.GATEWAY,
    AlertQuery: Kind.ALERTS,
}


@dataclass(frozen=True)
class Health:
    """Is the backend up, and one short fact about it ("ready", "12 targets up")."""

    ok: bool
    detail: str = ""


@dataclass(frozen=True)
class Sample:
    labels: Mapping[str, str]
    value: float


@dataclass(frozen=True)
class Series:
    labels: Mapping[str, str]
    points: tuple[tuple[float, float], ...]
    """(unix time, value), oldest first."""


@dataclass(frozen=True)
class MetricResult:
    query: MetricQuery
    samples: tuple[Sample, ...] = ()
    """An instant answer: one value per series."""
    series: tuple[Series, ...] = ()
    """A range answer: points per series."""
    unit: str = ""
    """How to print values: "%", "bytes", "s", "/s" or "" (as is)."""


@dataclass(frozen=True)
class LogLine:
    timestamp: float
    message: str
    source: str = ""
    """Where it came from, shortly (a service or stream label)."""


@dataclass(frozen=True)
class LogResult:
    query: LogQuery
    lines: tuple[LogLine, ...] = ()
    """Newest first, already deduplicated and trimmed."""
    total: int | None = None
    """How many matched in all, when the backend says."""


@dataclass(frozen=True)
class Alert:
    name: str
    labels: Mapping[str, str]
    state: str
    """firing or silenced."""
    starts_at: float | None = None
    summary: str = ""
    fingerprint: str = ""
    source: str = ""
    """The system of the backend that reported it ("alertmanager", "grafana"): where it is silenced."""


@dataclass(frozen=True)
class AlertList:
    query: AlertQuery
    alerts: tuple[Alert, ...] = ()
    """In the order they are numbered for replies ("ack 2")."""


@dataclass(frozen=True)
class Report:
    """An answer that is already a few short facts (db pools, gateway status)."""

    title: str
    facts: tuple[str, ...] = field(default_factory=tuple)


Result = MetricResult | LogResult | AlertList | Report


@runtime_checkable
class Monitor(Protocol):
    """One configured backend. Adapters implement this; nothing else talks to backends."""

    name: str
    """The config section's name ("prometheus", "loki", "orders_api")."""
    display: str
    """How replies name it ("Prometheus", "Loki")."""
    system: str
    """The health system it answers for (prometheus, logs, database, gateway, host …)."""
    kinds: frozenset[Kind]
    timeout_s: float

    async def health(self) -> Health: ...

    async def query(self, request: Query) -> Result: ...

    def format(self, result: Result) -> str: ...


@runtime_checkable
class AlertWriter(Protocol):
    """The writes of a backend that can silence alerts (Alertmanager, Grafana's Alertmanager API).

    Beside `Monitor`'s reads, not inside it: most backends only answer questions. Callers reach it
    through `MonitorRegistry.alert_writer()`, which hands out the guarded monitor, so a silence gets
    the same deadline, circuit breaker and error lines as every read. (An ack is Operator's own
    state: neither Alertmanager nor Grafana has an acknowledgement to write.)
    """

    display: str

    async def create_silence(self, alert: Alert, duration_s: int, created_by: str, comment: str) -> str:
        """Silences exactly this alert (all its labels must match) from now; the silence's id."""
        ...

    async def expire_silence(self, silence_id: str) -> None:
        """Ends a silence now; ending one that already ended is not an error."""
        ...
