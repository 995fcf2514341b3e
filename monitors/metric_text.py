"""How a metric answer reads in an SMS, the same for every metrics backend (Prometheus, Datadog, CloudWatch …)."""

from __future__ import annotations

import math
from collections.abc import Mapping

from intents.durations import format_duration
from monitors.base import MetricQuery, MetricResult, Series
from monitors.formatting import human, safe, trend

UNITS = {"cpu": "%", "memory": "bytes", "disk": "%", "latency": "s", "error_rate": "%", "requests": "/s", "up": ""}
"""How the built-in aliases' values read; other aliases print as plain numbers."""
MAX_SHOWN = 3
"""Series named in one SMS; the rest are counted."""


def format_metric(result: MetricResult) -> str:
    """ "checkout cpu: 42.1%" or "checkout cpu 1h: now 42%, min 10%, max 80%, avg 35%, rising"."""
    query = result.query
    scope = safe(query.service, 40) if query.service else ("" if query.raw else "all services")
    subject = f"{scope} {_metric_name(query)}".strip()
    if query.range_s:
        if not result.series:
            return f"{subject}: no data in that range"
        lines = [_series_line(s, result.unit, query.metric) for s in _ranked(result.series)[:MAX_SHOWN]]
        more = len(result.series) - MAX_SHOWN
        head = f"{subject} {format_duration(query.range_s)}:"
        return " ".join([head, "; ".join(lines)] + ([f"(+{more} more)"] if more > 0 else []))
    if not result.samples:
        return f"{subject}: no data"
    samples = sorted(result.samples, key=lambda s: -s.value if math.isfinite(s.value) else 0)
    if len(samples) == 1:
        return f"{subject}: {_value(samples[0].value, result.unit, query.metric)}"
    shown = ", ".join(f"{_name(s.labels)} {_value(s.value, result.unit, query.metric)}" for s in samples[:MAX_SHOWN])
    more = len(samples) - MAX_SHOWN
    return f"{subject}: {shown}" + (f" (+{more} more)" if more > 0 else "")


def _series_line(series: Series, unit: str, metric: str) -> str:
    values = [v for _, v in series.points if math.isfinite(v)]
    name = _name(series.labels)
    prefix = f"{name} " if name else ""
    if not values:
        return f"{prefix}no data"
    figures = {"now": values[-1], "min": min(values), "max": max(values), "avg": sum(values) / len(values)}
    parts = [f"{name} {_value(value, unit, metric)}" for name, value in figures.items()]
    return prefix + ", ".join([*parts, trend(values)])


def _value(value: float, unit: str, metric: str) -> str:
    if metric == "up" and value in (0.0, 1.0):
        return "up" if value == 1.0 else "DOWN"
    return human(value, unit)


def _ranked(series: tuple[Series, ...]) -> list[Series]:
    return sorted(series, key=lambda s: -(s.points[-1][1] if s.points and math.isfinite(s.points[-1][1]) else 0))


def _metric_name(query: MetricQuery) -> str:
    return "query" if query.raw else query.metric.replace("_", " ")


def _name(labels: Mapping[str, str]) -> str:
    for key in ("service", "instance", "job", "pod", "host"):
        if key in labels:
            return safe(labels[key], 30)
    return safe(",".join(f"{k}={v}" for k, v in sorted(labels.items()) if k != "__name__"), 40)
