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
from pydantic import BaseModel, ConfigDict, Field

from monitors.base import Health, Kind, MetricQuery, MetricResult, Query, Result, Sample, Series
from monitors.errors import BackendQueryError, BadBackendResponse
from monitors.http import HttpBackend, dig, parse_json
from monitors.metric_text import UNITS, format_metric
from monitors.registry import BuildContext

_SERVICE_MATCHER = re.compile(r'(\w+)\s*=\s*"\{service\}"')
MAX_POINTS = 120
"""Points per series in a range answer: enough for min/max/trend, far below Prometheus's 11,000."""


class PrometheusConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelled key is refused, not ignored

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


def _labels(raw: Mapping[str, Any]) -> dict[str, str]:
    return {str(k): str(v) for k, v in raw.items()}


def _float(display: str, raw: Any) -> float:
    try:
        return float(raw)
    except (TypeError, ValueError) as exc:
        raise BadBackendResponse(display, "value is not a number") from exc


def build(name: str, config: Mapping[str, Any], context: BuildContext) -> Prometheus:
    return Prometheus(name, PrometheusConfig(**config), context.client, context.metric_templates)
