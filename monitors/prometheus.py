"""Prometheus: instant and range queries, metric aliases from config, health from /-/ready.

Aliases are PromQL templates with `{service}` where a label value goes; the value is escaped as a
PromQL string, never pasted raw, and with no service the matcher becomes "any service".
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping
from typing import Any

import httpx
from pydantic import BaseModel, Field

from intents.durations import format_duration
from monitors.base import Health, Kind, MetricQuery, MetricResult, Query, Result, Sample, Series
from monitors.errors import BackendQueryError, BadBackendResponse
from monitors.formatting import human, safe, trend
from monitors.http import HttpBackend, dig, parse_json
from monitors.registry import BuildContext

UNITS = {"cpu": "%", "memory": "bytes", "disk": "%", "latency": "s", "error_rate": "%", "requests": "/s", "up": ""}
"""How the built-in aliases' values read; other aliases print as plain numbers."""

_SERVICE_MATCHER = re.compile(r'(\w+)\s*=\s*"\{service\}"')
MAX_POINTS = 120
"""Points per series in a range answer: enough for min/max/trend, far below Prometheus's 11,000."""
MAX_SHOWN = 3
"""Series named in one SMS; the rest are counted."""


class PrometheusConfig(BaseModel):
    url: str
    timeout_s: float = Field(3.0, gt=0, le=30)


def escape_label_value(value: str) -> str:
    """A PromQL double-quoted string's content: backslash, quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def expand(template: str, service: str | None) -> str:
    """The template with `{service}` filled in (escaped), or matching any service when there is none."""
    if service is None:
        return _SERVICE_MATCHER.sub(lambda m: f'{m.group(1)}=~".+"', template).replace("{service}", ".+")
    return template.replace("{service}", escape_label_value(service))


def _error_reason(body: Any) -> str | None:
    return str(body["error"]) if isinstance(body, dict) and "error" in body else None


class Prometheus:
    display = "Prometheus"
    system = "prometheus"
    kinds = frozenset({Kind.METRICS})

    def __init__(
        self, name: str, config: PrometheusConfig, client: httpx.AsyncClient, templates: Mapping[str, str]
    ) -> None:
        self.name = name
        self.timeout_s = config.timeout_s
        self.templates = dict(templates)
        self.http = HttpBackend(self.display, client, config.url, config.timeout_s, error_reason=_error_reason)

    async def health(self) -> Health:
        status, body = await self.http.request("GET", "/-/ready", ok=(200, 503))
        if status == 503:
            return Health(False, "not ready")
        return Health(True, "ready")

    async def query(self, request: Query) -> Result:
        if not isinstance(request, MetricQuery):
            raise BackendQueryError(self.display, "only metrics")
        expr = self.expression(request)
        if request.range_s:
            end = time.time()
            step = max(1, math.ceil(request.range_s / MAX_POINTS))
            params = {"query": expr, "start": f"{end - request.range_s:.3f}", "end": f"{end:.3f}", "step": str(step)}
            data = await self._data("/api/v1/query_range", params)
            return MetricResult(request, series=self._matrix(data), unit=self._unit(request))
        data = await self._data("/api/v1/query", {"query": expr})
        return MetricResult(request, samples=self._instant(data), unit=self._unit(request))

    def expression(self, request: MetricQuery) -> str:
        if request.raw:
            return request.metric
        template = self.templates.get(request.metric)
        if template is None:
            raise BackendQueryError(self.display, f"no query for {request.metric}")
        return expand(template, request.service)

    def _unit(self, request: MetricQuery) -> str:
        return "" if request.raw else UNITS.get(request.metric, "")

    async def _data(self, path: str, params: Mapping[str, str]) -> Any:
        _, body = await self.http.request("GET", path, params=params)
        answer = parse_json(self.display, body)
        if dig(self.display, answer, "status") != "success":
            raise BackendQueryError(self.display, _error_reason(answer) or "query failed")
        return dig(self.display, answer, "data", kind=dict)

    def _instant(self, data: Mapping[str, Any]) -> tuple[Sample, ...]:
        kind = dig(self.display, data, "resultType")
        result = dig(self.display, data, "result")
        if kind == "scalar":
            return (Sample({}, _float(self.display, dig(self.display, result, 1))),)
        if kind != "vector":
            raise BadBackendResponse(self.display, f"{kind} result")
        return tuple(self._sample(item) for item in dig(self.display, result, kind=list))

    def _sample(self, item: Any) -> Sample:
        labels = _labels(dig(self.display, item, "metric", kind=dict))
        return Sample(labels, _float(self.display, dig(self.display, item, "value", 1)))

    def _point(self, raw: Any) -> tuple[float, float]:
        return _float(self.display, dig(self.display, raw, 0)), _float(self.display, dig(self.display, raw, 1))

    def _matrix(self, data: Mapping[str, Any]) -> tuple[Series, ...]:
        if dig(self.display, data, "resultType") != "matrix":
            raise BadBackendResponse(self.display, "not a matrix")
        series = []
        for item in dig(self.display, data, "result", kind=list):
            values = dig(self.display, item, "values", kind=list)
            points = tuple(self._point(raw) for raw in values)
            series.append(Series(_labels(dig(self.display, item, "metric", kind=dict)), points))
        return tuple(series)

    def format(self, result: Result) -> str:
        assert isinstance(result, MetricResult)
        return format_metric(result)


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


def _labels(raw: Mapping[str, Any]) -> dict[str, str]:
    return {str(k): str(v) for k, v in raw.items()}


def _float(display: str, raw: Any) -> float:
    try:
        return float(raw)
    except (TypeError, ValueError) as exc:
        raise BadBackendResponse(display, "value is not a number") from exc


def build(name: str, config: Mapping[str, Any], context: BuildContext) -> Prometheus:
    return Prometheus(name, PrometheusConfig(**config), context.client, context.metric_templates)
