"""Datadog: metric queries (v1 `/query`) and log search (v2 `/logs/events/search`), keys from the
environment only.

Metric aliases are Datadog query templates with `{service}` where a tag value goes. A tag value
is written the way Datadog itself normalises tags (lower case, anything else an underscore), so
nothing a user texts can close the `{...}` scope or add a filter. Log searches are JSON built as
data, with service and words escaped in Datadog's search syntax.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

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
from monitors.errors import BackendQueryError, BadBackendResponse, CredentialsMissing
from monitors.formatting import safe
from monitors.http import HttpBackend, dig
from monitors.logs_format import SCANNED_CHARS, format_logs, tidy
from monitors.metric_text import UNITS, format_metric
from monitors.registry import BuildContext

DEFAULT_QUERIES: dict[str, str] = {
    "cpu": "avg:system.cpu.user{service:{service}}",
    "memory": "avg:system.mem.used{service:{service}}",
    "disk": "100 * avg:system.disk.in_use{service:{service}}",
    "latency": "avg:trace.http.request.duration{service:{service}}",
    "error_rate": "100 * sum:trace.http.request.errors{service:{service}}.as_count()"
    " / sum:trace.http.request.hits{service:{service}}.as_count()",
    "requests": "sum:trace.http.request.hits{service:{service}}.as_rate()",
    "up": "min:datadog.agent.running{service:{service}}",
}
"""The built-in aliases, for hosts and APM traces under unified service tagging; a `metrics:`
mapping in the section adds aliases or replaces these."""

KEY_SETTINGS = {"datadog_api_key": "DATADOG_API_KEY", "datadog_app_key": "DATADOG_APP_KEY"}
"""BuildContext secret name -> the environment variable people set (named in replies, never valued)."""

INSTANT_WINDOW_S = 600
"""Datadog has no instant query: "now" is the latest point of the last ten minutes."""
MAX_TAG = 200
MAX_SEARCH = 1000
"""Longest log search sent; longer texts are refused before they cost a request."""
PAGE_LIMIT = 100

_HOST = re.compile(r"(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+")
_URL = re.compile(r"https?://[^\s/?#]+(/[^\s?#]*)?")
_TAG_UNSAFE = re.compile(r"[^a-z0-9_\-./:]")
_SERVICE_FILTER = re.compile(r"\s*,?\s*[\w.\-/]+:\{service\}\s*,?")
_SEARCH_SPECIAL = frozenset('+-=&|><!(){}[]^"~*?:\\#/')
_STATUSES = {
    "error": "(emergency OR alert OR critical OR error)",
    "critical": "(emergency OR alert OR critical)",
    "warn": "warn",
    "warning": "warn",
    "info": "info",
    "notice": "notice",
    "debug": "debug",
}


class DatadogConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    site: str = "datadoghq.com"
    """Which Datadog: datadoghq.com, us3.datadoghq.com, datadoghq.eu, ap1.datadoghq.com …"""
    api_url: str | None = None
    """Overrides https://api.{site} (a proxy, or a test server)."""
    timeout_s: float = Field(5.0, gt=0, le=30)
    metrics: dict[str, str] = Field(default_factory=dict)
    """Alias -> Datadog metric query with `{service}` where the service tag's value goes."""
    log_indexes: list[str] = Field(default_factory=list)
    """Log indexes to search (none: every index the keys may read)."""

    @field_validator("site")
    @classmethod
    def _plain_host(cls, value: str) -> str:
        if not _HOST.fullmatch(value):
            raise ValueError("must be a plain host name such as datadoghq.eu")
        return value

    @field_validator("api_url")
    @classmethod
    def _plain_url(cls, value: str | None) -> str | None:
        if value is not None and not _URL.fullmatch(value):
            raise ValueError("must be an http(s) URL")
        return value


def tag_value(value: str) -> str:
    """A service as Datadog stores tag values: lower case, characters outside its tag alphabet
    as underscores. Nothing left can end the scope, add a tag or act as a wildcard."""
    normal = _TAG_UNSAFE.sub("_", value.strip().lower()).rstrip(":")
    if not normal or len(normal) > MAX_TAG:
        raise BackendQueryError("Datadog", "service name not usable as a tag")
    return normal


def expand(template: str, service: str | None) -> str:
    """The template for one service, or with its `tag:{service}` filters dropped for every service."""
    if service is not None:
        return template.replace("{service}", tag_value(service))
    dropped = _SERVICE_FILTER.sub(",", template)
    dropped = re.sub(r"\{\s*,*\s*", "{", re.sub(r"\s*,*\s*\}", "}", dropped))
    return dropped.replace("{}", "{*}").replace("{service}", "*")


def search_value(value: str) -> str:
    """One value in Datadog's log search syntax: special characters and spaces backslash-escaped."""
    cleaned = " ".join("".join(ch if ch.isprintable() else " " for ch in value).split())
    return "".join("\\" + ch if ch in _SEARCH_SPECIAL or ch == " " else ch for ch in cleaned)


def search_phrase(term: str) -> str:
    """Free-text words as one quoted sequence, so operators in them are only text."""
    cleaned = " ".join("".join(ch if ch.isprintable() else " " for ch in term).split())
    return '"' + cleaned.replace("\\", "\\\\").replace('"', '\\"') + '"'


def search_query(query: LogQuery) -> str:
    parts = []
    if query.service:
        parts.append(f"service:{search_value(query.service)}")
    if query.level:
        level = query.level.lower()
        parts.append(f"status:{_STATUSES.get(level) or search_value(level)}")
    parts.extend(search_phrase(term) for term in query.terms if term.strip())
    text = " ".join(parts) or "*"
    if len(text) > MAX_SEARCH:
        raise BackendQueryError("Datadog", "search too long")
    return text


def search_body(query: LogQuery, indexes: Sequence[str] = ()) -> dict[str, Any]:
    """The `/api/v2/logs/events/search` request: newest first, a few more than asked so
    repeated lines can be folded."""
    search: dict[str, Any] = {"query": search_query(query), "from": f"now-{int(query.range_s)}s", "to": "now"}
    if indexes:
        search["indexes"] = list(indexes)
    limit = max(1, min(PAGE_LIMIT, query.limit * 4))
    return {"filter": search, "sort": "-timestamp", "page": {"limit": limit}}


def _error_reason(body: Any) -> str | None:
    """Datadog's errors come as `{"errors": ["…"]}`."""
    errors = body.get("errors") if isinstance(body, dict) else None
    if isinstance(errors, list) and errors:
        return str(errors[0])
    return None


class Datadog:
    display = "Datadog"
    system = "datadog"
    kinds = frozenset({Kind.METRICS, Kind.LOGS})

    def __init__(self, name: str, config: DatadogConfig, client: httpx.AsyncClient, secrets: Mapping[str, str]) -> None:
        self.name = name
        self.timeout_s = config.timeout_s
        self.queries = {**DEFAULT_QUERIES, **config.metrics}
        self.indexes = tuple(config.log_indexes)
        keys = {setting: secrets.get(setting, "") for setting in KEY_SETTINGS}
        self.missing = tuple(env for setting, env in KEY_SETTINGS.items() if not keys[setting])
        headers = {"DD-API-KEY": keys["datadog_api_key"], "DD-APPLICATION-KEY": keys["datadog_app_key"]}
        base_url = config.api_url or f"https://api.{config.site}"
        self._keys = tuple(key for key in keys.values() if key)
        self.http = HttpBackend(self.display, client, base_url, config.timeout_s, headers, self._reason)

    def _reason(self, body: Any) -> str | None:
        """Datadog's own reason, with the keys taken out should it ever quote them back."""
        reason = _error_reason(body)
        return self._redact(reason) if reason is not None else None

    def _redact(self, text: str) -> str:
        for key in self._keys:
            text = text.replace(key, "<key>")
        return text

    async def health(self) -> Health:
        if self.missing:
            return Health(False, f"{' and '.join(self.missing)} not set")
        answer = await self.http.get_json("/api/v1/validate")
        if dig(self.display, answer, "valid") is not True:
            return Health(False, "API key not valid")
        return Health(True, "API key valid")

    async def query(self, request: Query) -> Result:
        if self.missing:
            raise CredentialsMissing(self.display, self.missing)  # no request is sent without them
        if isinstance(request, MetricQuery):
            return await self._metrics(request)
        if isinstance(request, LogQuery):
            return await self._logs(request)
        raise BackendQueryError(self.display, "only metrics and logs")

    def expression(self, request: MetricQuery) -> str:
        if request.raw:
            return request.metric
        template = self.queries.get(request.metric)
        if template is None:
            raise BackendQueryError(self.display, f"no query for {safe(request.metric, 30)}")
        return expand(template, request.service)

    async def _metrics(self, request: MetricQuery) -> MetricResult:
        expr = self.expression(request)
        end = int(time.time())
        start = end - (request.range_s or INSTANT_WINDOW_S)
        answer = await self.http.get_json("/api/v1/query", {"from": start, "to": end, "query": expr})
        if dig(self.display, answer, "status") != "ok":
            raise BackendQueryError(self.display, self._redact(str(answer.get("error") or "query failed")))
        series = tuple(self._series(raw) for raw in dig(self.display, answer, "series", kind=list))
        unit = "" if request.raw else UNITS.get(request.metric, "")
        if request.range_s:
            return MetricResult(request, series=series, unit=unit)
        samples = tuple(Sample(s.labels, s.points[-1][1]) for s in series if s.points)
        return MetricResult(request, samples=samples, unit=unit)

    def _series(self, raw: Any) -> Series:
        points = []
        for point in dig(self.display, raw, "pointlist", kind=list):
            stamp, value = dig(self.display, point, 0), dig(self.display, point, 1)
            if value is None:
                continue  # Datadog leaves gaps as nulls
            points.append((_number(stamp) / 1000, _number(value)))
        return Series(_tags(raw), tuple(sorted(points)))

    async def _logs(self, request: LogQuery) -> LogResult:
        body = search_body(request, self.indexes)
        answer = await self.http.post_json("/api/v2/logs/events/search", body)
        events = dig(self.display, answer, "data", kind=list)
        lines = [self._line(dig(self.display, event, "attributes", kind=dict)) for event in events]
        return LogResult(request, tidy(lines, request.limit), _total(answer, len(events), body["page"]["limit"]))

    def _line(self, attributes: Mapping[str, Any]) -> LogLine:
        raw_time = dig(self.display, attributes, "timestamp", kind=str)
        try:
            stamp = datetime.fromisoformat(raw_time).timestamp()
        except ValueError as exc:
            raise BadBackendResponse(self.display, "timestamp not readable") from exc
        message = attributes.get("message")
        return LogLine(stamp, str(message)[:SCANNED_CHARS] if message is not None else "", _source(attributes))

    def format(self, result: Result) -> str:
        if isinstance(result, LogResult):
            return format_logs(result)
        assert isinstance(result, MetricResult)
        return format_metric(result)


def _total(answer: Mapping[str, Any], count: int, limit: int) -> int | None:
    """How many matched, when this one page held them all (no cursor to a next page)."""
    meta = answer.get("meta")
    page = meta.get("page") if isinstance(meta, dict) else None
    more = isinstance(page, dict) and bool(page.get("after"))
    return count if count < limit and not more else None


def _number(raw: Any) -> float:
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        raise BadBackendResponse("Datadog", "value is not a number")
    return float(raw)


def _tags(raw: Any) -> dict[str, str]:
    """Series labels from `tag_set` ("service:checkout"), or the scope when it names one group."""
    tags = raw.get("tag_set") if isinstance(raw, dict) else None
    labels: dict[str, str] = {}
    for tag in tags if isinstance(tags, list) else []:
        key, _, value = str(tag).partition(":")
        labels[key] = value
    scope = raw.get("scope") if isinstance(raw, dict) else None
    if not labels and isinstance(scope, str) and scope not in ("*", ""):
        labels["scope"] = scope
    return labels


def _source(attributes: Mapping[str, Any]) -> str:
    """The service a log line came from, else its source tag, else its host."""
    if isinstance(attributes.get("service"), str):
        return str(attributes["service"])
    tags = attributes.get("tags")
    for prefix in ("service:", "source:"):
        for tag in tags if isinstance(tags, list) else []:
            if isinstance(tag, str) and tag.startswith(prefix):
                return tag.removeprefix(prefix)
    host = attributes.get("host")
    return host if isinstance(host, str) else ""


def build(name: str, config: Mapping[str, Any], context: BuildContext) -> Datadog:
    return Datadog(name, DatadogConfig(**config), context.client, context.secrets)
