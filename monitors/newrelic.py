"""New Relic: metrics and logs as NRQL through NerdGraph, the GraphQL API, with the user key from
NEW_RELIC_API_KEY only.

Every question is one POST of a fixed GraphQL document to `/graphql` (`api.newrelic.com`, or
`api.eu.newrelic.com` for `region: eu`) with the `API-Key` header, and the NRQL as the `$nrql`
variable (`monitors.nrql` builds it). NerdGraph answers most failures with HTTP 200 and an `errors`
array beside a null result, so those are read as carefully as HTTP statuses: a refused key
(`extensions.error_code` BAD_API_KEY) is a credentials error, NRDB's TIMEOUT a timeout, a NRQL syntax
error "query rejected" with New Relic's own words (its "Error at line 1 position 8, unexpected
'FROM'"), and the key is taken out of any words it quotes back.

Answers: an aggregate's rows are samples, a TIMESERIES's rows (`beginTimeSeconds`) points; the value
is the one number a row holds besides its time and facet fields (a percentile's `{"99": 0.4}` too),
so aliases may select whatever they like as long as it is one value.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator

from monitors.base import (
    Health,
    Kind,
    LogLine,
    LogQuery,
    LogResult,
    MetricQuery,
    MetricResult,
    Query,
    Result,
    Sample,
    Series,
)
from monitors.errors import (
    BackendAuthError,
    BackendError,
    BackendQueryError,
    BackendTimeout,
    BadBackendResponse,
    CredentialsMissing,
)
from monitors.formatting import safe
from monitors.http import HttpBackend, dig
from monitors.logs_format import SCANNED_CHARS, format_logs, tidy
from monitors.metric_text import UNITS, format_metric
from monitors.nrql import DEFAULT_TEMPLATES, NAME, check_template, expand, log_nrql, metric_nrql
from monitors.registry import BuildContext

ENDPOINTS = {"us": "https://api.newrelic.com", "eu": "https://api.eu.newrelic.com"}
KEY_SETTING, KEY_ENV = "new_relic_api_key", "NEW_RELIC_API_KEY"

NRQL_DOCUMENT = (
    "query($accountId: Int!, $nrql: Nrql!, $timeout: Seconds) { actor { account(id: $accountId) "
    "{ nrql(query: $nrql, timeout: $timeout) { results metadata { facets } } } } }"
)
"""The only GraphQL sent; the NRQL, the account and NRDB's timeout travel as variables."""
HEALTH_NRQL = "SELECT count(*) FROM Transaction SINCE 1 minute ago"
"""Health is a query, the cheapest there is: it proves the key, the account and NRDB in one go."""
INSTANT_WINDOW_S = 300
"""A value "now" is the aggregate over the last five minutes."""
PAGE_LIMIT = 100
NRDB_TIMEOUT_S = (5, 120)
"""The range NerdGraph accepts for `timeout`; NRDB gives up by then rather than running on."""
_META = frozenset({"beginTimeSeconds", "endTimeSeconds", "facet", "timestamp"})
_URL = r"^https?://[^\s/?#]+(/[^\s?#]*)?$"


class NewRelicConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account_id: int = Field(gt=0, lt=2**31)
    """The account NRQL runs against (NerdGraph's `Int!`)."""
    region: Literal["us", "eu"] = "us"
    api_url: str | None = Field(None, pattern=_URL)
    """Overrides https://api.newrelic.com or https://api.eu.newrelic.com (a proxy, or a test server)."""
    timeout_s: float = Field(5.0, gt=0, le=30)
    metrics: dict[str, str] = Field(default_factory=dict)
    """Alias -> NRQL without a time range, with `attribute = '{service}'` where a service goes."""
    log_event_type: str = Field("Log", pattern=f"^{NAME}$")
    """`Log`, or a data partition (`Log_payments`)."""
    service_attributes: list[str] = Field(default_factory=lambda: ["service.name", "entity.name", "service"])
    """Log attributes naming the service; a record matches when any of them equals it."""
    level_attribute: str = Field("level", pattern=f"^{NAME}$")

    @field_validator("metrics")
    @classmethod
    def _templates(cls, value: dict[str, str]) -> dict[str, str]:
        return {alias: check_template(template) for alias, template in value.items()}

    @field_validator("service_attributes")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        if not value or len(value) > 5 or not all(_plain_name(v) for v in value):
            raise ValueError("must be one to five plain attribute names")
        return value


def _plain_name(value: str) -> bool:
    return re.fullmatch(NAME, value) is not None


class NewRelic:
    display = "New Relic"
    system = "newrelic"
    kinds = frozenset({Kind.METRICS, Kind.LOGS})

    def __init__(
        self, name: str, config: NewRelicConfig, client: httpx.AsyncClient, secrets: Mapping[str, str]
    ) -> None:
        self.name = name
        self.config = config
        self.timeout_s = config.timeout_s
        self.queries = {**DEFAULT_TEMPLATES, **config.metrics}
        self._key = secrets.get(KEY_SETTING, "").strip()
        self.missing = () if self._key else (KEY_ENV,)
        low, high = NRDB_TIMEOUT_S
        self.nrdb_timeout_s = max(low, min(high, math.ceil(config.timeout_s)))
        base_url = config.api_url or ENDPOINTS[config.region]
        headers = {"API-Key": self._key} if self._key else {}
        self.http = HttpBackend(self.display, client, base_url, config.timeout_s, headers, self._reason)

    async def health(self) -> Health:
        if self.missing:
            return Health(False, f"{KEY_ENV} not set")
        rows, facets = await self.nrql(HEALTH_NRQL)
        count = _value(rows[0], facets) if rows else None
        if count is None:
            raise BadBackendResponse(self.display, "no count in answer")
        return Health(True, f"{count:.0f} transactions in the last minute")

    async def query(self, request: Query) -> Result:
        if self.missing:
            raise CredentialsMissing(self.display, self.missing)  # no request is sent without the key
        if isinstance(request, MetricQuery):
            return await self._metrics(request)
        if isinstance(request, LogQuery):
            return await self._logs(request)
        raise BackendQueryError(self.display, "only metrics and logs")

    def expression(self, request: MetricQuery) -> tuple[str, str | None]:
        """The NRQL for a metric question and the attribute its answer is faceted by for the service.

        An alias of this section is used even when the parser took the word as a raw query (it only
        knows the top-level PromQL aliases); any other raw text is the user's own NRQL.
        """
        template = self.queries.get(request.metric)
        if template is not None:
            base, facet = expand(template, request.service)
        elif request.raw:
            base, facet = request.metric, None
        else:
            raise BackendQueryError(self.display, f"no NRQL for {safe(request.metric, 30)} (add it under metrics:)")
        return metric_nrql(base, request.range_s, INSTANT_WINDOW_S), facet

    async def nrql(self, nrql: str) -> tuple[list[Mapping[str, Any]], tuple[str, ...]]:
        """The result rows of one NRQL query, and the attributes it is faceted by."""
        variables = {"accountId": self.config.account_id, "nrql": nrql, "timeout": self.nrdb_timeout_s}
        answer = await self.http.post_json("/graphql", {"query": NRQL_DOCUMENT, "variables": variables})
        if not isinstance(answer, dict):
            raise BadBackendResponse(self.display, "answer is not an object")
        data = answer.get("data")
        result = _find(data, "actor", "account", "nrql")
        if result is None:
            errors = answer.get("errors")
            if isinstance(errors, list) and errors:
                raise self._graphql_error(errors)
        result = dig(self.display, answer, "data", "actor", "account", "nrql", kind=dict)
        rows = dig(self.display, result, "results", kind=list)
        if not all(isinstance(row, dict) for row in rows):
            raise BadBackendResponse(self.display, "result rows are not objects")
        facets = _find(result, "metadata", "facets")
        names = tuple(str(f) for f in facets) if isinstance(facets, list) else ()
        return rows, names

    def _graphql_error(self, errors: list[Any]) -> BackendError:
        """NerdGraph's errors (HTTP 200) as ours: a class or code in any of them (a refused key, NRDB's
        timeout) decides; else the first one's message is the reason the query was rejected."""
        first = errors[0] if isinstance(errors[0], dict) else {}
        extensions = [e.get("extensions") if isinstance(e, dict) else None for e in errors]
        codes = {str(x.get(k)) for x in extensions if isinstance(x, dict) for k in ("error_code", "code")}
        classes = {str(x.get("errorClass")) for x in extensions if isinstance(x, dict)}
        if "BAD_API_KEY" in codes or classes & {"UNAUTHORIZED", "UNAUTHENTICATED"}:
            return BackendAuthError(self.display, detail="API key refused")
        if "FORBIDDEN" in classes or "FORBIDDEN" in codes:
            return BackendAuthError(self.display, detail="no access to the account")
        if "TIMEOUT" in classes:
            return BackendTimeout(self.display, self.nrdb_timeout_s)
        if "TOO_MANY_REQUESTS" in classes:
            return BackendError(self.display, "rate limited")
        if classes & {"INTERNAL_SERVER_ERROR", "SERVER_ERROR"}:
            return BackendError(self.display, "server error")
        message = first.get("message")
        return BackendQueryError(self.display, self._redact(str(message)) if message else "query failed")

    def _reason(self, body: Any) -> str | None:
        """The first GraphQL error's message of an HTTP error answer, with the key taken out."""
        errors = body.get("errors") if isinstance(body, dict) else None
        first = errors[0] if isinstance(errors, list) and errors else None
        message = first.get("message") if isinstance(first, dict) else None
        return self._redact(str(message)) if message else None

    def _redact(self, text: str) -> str:
        return text.replace(self._key, "<key>") if self._key else text

    async def _metrics(self, request: MetricQuery) -> MetricResult:
        nrql, service_facet = self.expression(request)
        rows, facets = await self.nrql(nrql)
        facets = facets or ((service_facet,) if service_facet else ())
        alias = request.metric in self.queries
        unit = UNITS.get(request.metric, "") if alias else ""
        request = replace(request, raw=False) if alias else request  # the reply names the alias
        timed: dict[tuple[tuple[str, str], ...], list[tuple[float, float]]] = {}
        samples: list[Sample] = []
        for row in rows:
            value = _value(row, facets)
            labels = _labels(row, facets, service_facet)
            begin = row.get("beginTimeSeconds")
            if begin is not None:
                points = timed.setdefault(tuple(sorted(labels.items())), [])
                if value is not None:
                    points.append((_number(begin), value))
            elif value is not None:
                samples.append(Sample(labels, value))
        series = tuple(Series(dict(key), tuple(sorted(points))) for key, points in timed.items())
        if request.range_s:
            return MetricResult(request, series=series or _as_series(samples), unit=unit)
        if series:
            samples = [Sample(s.labels, s.points[-1][1]) for s in series if s.points]
        return MetricResult(request, samples=tuple(samples), unit=unit)

    async def _logs(self, request: LogQuery) -> LogResult:
        limit = max(1, min(PAGE_LIMIT, request.limit * 4))
        config = self.config
        nrql = log_nrql(request, config.log_event_type, config.service_attributes, config.level_attribute, limit)
        rows, _ = await self.nrql(nrql)
        lines = [self._line(row) for row in rows]
        return LogResult(request, tidy(lines, request.limit), len(rows) if len(rows) < limit else None)

    def _line(self, row: Mapping[str, Any]) -> LogLine:
        """One log record; NRDB keeps `timestamp` as epoch milliseconds."""
        raw = row.get("timestamp")
        if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not math.isfinite(raw):
            raise BadBackendResponse(self.display, "timestamp not readable")
        message = row.get("message")
        text = str(message)[:SCANNED_CHARS] if message is not None else ""
        sources = [row.get(attribute) for attribute in (*self.config.service_attributes, "hostname")]
        source = next((s for s in sources if isinstance(s, str) and s), "")
        return LogLine(raw / 1000, text, source)

    def format(self, result: Result) -> str:
        if isinstance(result, LogResult):
            return format_logs(result)
        assert isinstance(result, MetricResult)
        return format_metric(result)


def _find(data: Any, *path: str) -> Any:
    """`data[path…]`, or None where any step is missing or not an object."""
    for step in path:
        if not isinstance(data, dict):
            return None
        data = data.get(step)
    return data


def _number(raw: Any) -> float:
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        raise BadBackendResponse("New Relic", "value is not a number")
    return float(raw)


def _value(row: Mapping[str, Any], facets: tuple[str, ...]) -> float | None:
    """The one value a result row holds (None: no data in that window), besides time and facet fields."""
    values = [value for key, value in row.items() if key not in _META and key not in facets]
    numbers = [_single(value) for value in values if not isinstance(value, str)]
    if len(numbers) != 1:
        if not numbers:
            raise BadBackendResponse("New Relic", "no value in answer")
        raise BackendQueryError("New Relic", "the query selects more than one value")
    return numbers[0]


def _single(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, dict):  # percentile(duration, 99): {"99": 0.41}
        if len(value) != 1:
            raise BackendQueryError("New Relic", "the query selects more than one value")
        return _single(next(iter(value.values())))
    return _number(value)


def _labels(row: Mapping[str, Any], facets: tuple[str, ...], service_facet: str | None) -> dict[str, str]:
    """A row's facet values; the service attribute the bot faceted by is called `service`."""
    labels: dict[str, str] = {}
    for facet in facets:
        value = row.get(facet, row.get("facet") if len(facets) == 1 else None)
        if value is not None:
            labels["service" if facet == service_facet else facet] = str(value)
    return labels


def _as_series(samples: list[Sample]) -> tuple[Series, ...]:
    """A raw query with its own non-TIMESERIES shape, asked for a range: one point each, at now."""
    now = time.time()
    return tuple(Series(s.labels, ((now, s.value),)) for s in samples)


def build(name: str, config: Mapping[str, Any], context: BuildContext) -> NewRelic:
    return NewRelic(name, NewRelicConfig(**config), context.client, context.secrets)
