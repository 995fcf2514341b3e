"""Elasticsearch (and OpenSearch): newest matching log lines from `_search`, health from `_cluster/health`.

The search is a bool query built as a dict, never a query string: the user's words go in as
`match_phrase` values and the service as a `term` value, so quotes, `OR`, `*` or `}` in them are
text to look for, not syntax. Field names default to ECS (`message`, `@timestamp`, `service.name`,
`log.level`) and are config, checked to be plain field names.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator

from monitors.base import Health, Kind, LogLine, LogQuery, LogResult, Query, Result
from monitors.errors import BackendQueryError, BadBackendResponse
from monitors.formatting import safe
from monitors.http import HttpBackend, dig
from monitors.logs_format import format_logs, tidy
from monitors.registry import BuildContext

FIELD = r"^[A-Za-z0-9_@][A-Za-z0-9_@.-]{0,199}$"
_INDEX_PART = re.compile(r"(?:[a-z0-9*][a-z0-9_*-]*:)?-?[a-z0-9.*][a-z0-9._*+-]*")
DEFAULT_LEVELS = {
    "error": ["error", "ERROR", "Error", "err", "ERR", "fatal", "FATAL", "critical", "CRITICAL"],
    "warn": ["warn", "WARN", "Warn", "warning", "WARNING", "Warning"],
    "info": ["info", "INFO", "Info"],
}
"""Level -> the values of the level field that mean it; `terms` is exact, so common spellings are listed."""
API_KEY_SECRET = "elasticsearch_api_key"
"""The secret (from the environment, via BuildContext.secrets) sent as `Authorization: ApiKey …`."""


class ElasticsearchConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelled key is refused, not ignored

    url: str
    index: str = "logs-*"
    """An index, alias, data stream or pattern; comma-separated lists and `-exclusions` allowed."""
    timeout_s: float = Field(3.0, gt=0, le=30)
    message_field: str = Field("message", pattern=FIELD)
    timestamp_field: str = Field("@timestamp", pattern=FIELD)
    service_field: str = Field("service.name", pattern=FIELD)
    """Must be a keyword field (or `service.keyword`): `term` matches it exactly."""
    level_field: str = Field("log.level", pattern=FIELD)
    levels: dict[str, list[str]] = Field(default_factory=lambda: {k: list(v) for k, v in DEFAULT_LEVELS.items()})
    fetch_lines: int = Field(100, ge=1, le=1000)
    """Hits asked for, newest first; more than shown, so repeats can be folded."""

    @field_validator("index")
    @classmethod
    def _index(cls, value: str) -> str:
        parts = value.split(",")
        if len(value) > 255 or not all(_INDEX_PART.fullmatch(p) and p.strip("-") not in (".", "..") for p in parts):
            raise ValueError("must be a lowercase index name or pattern (letters, digits, . _ - + *)")
        return value


def search_body(config: ElasticsearchConfig, request: LogQuery) -> dict[str, Any]:
    """The `_search` request: filters for time, service and level, a phrase per word, newest first."""
    filters: list[dict[str, Any]] = [
        {"range": {config.timestamp_field: {"gte": f"now-{int(request.range_s)}s", "lte": "now"}}}
    ]
    if request.service:
        filters.append({"term": {config.service_field: request.service}})
    if request.level:
        filters.append({"terms": {config.level_field: config.levels[request.level]}})
    phrases = [{"match_phrase": {config.message_field: term}} for term in request.terms if term]
    return {
        "size": max(config.fetch_lines, request.limit),
        "sort": [{config.timestamp_field: {"order": "desc", "unmapped_type": "date"}}],
        "track_total_hits": True,
        "_source": [config.message_field, config.timestamp_field, config.service_field],
        "query": {"bool": {"filter": filters, "must": phrases}},
    }


def _error_reason(body: Any) -> str | None:
    """Elasticsearch's own words: the first root cause's reason (the specific one), else the error's."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, str):
        return safe(error, 200)
    if not isinstance(error, dict):
        return None
    causes = error.get("root_cause")
    first = causes[0] if isinstance(causes, list) and causes and isinstance(causes[0], dict) else {}
    reason = first.get("reason") or error.get("reason") or error.get("type")
    return safe(str(reason), 200) if reason else None


def field(source: Mapping[str, Any], name: str) -> Any:
    """A field of `_source`, stored flat (`"log.level": …`) or nested (`"log": {"level": …}`); the first of a list."""
    value: Any = source.get(name)
    if value is None and "." in name:
        value = source
        for step in name.split("."):
            value = value.get(step) if isinstance(value, Mapping) else None
    if isinstance(value, list):
        value = value[0] if value else None
    return value


def timestamp(raw: Any) -> float | None:
    """Seconds since the epoch from an ISO 8601 date (no zone means UTC, as Elasticsearch reads it) or epoch millis."""
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return float(raw) / 1000
    if not isinstance(raw, str):
        return None
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        return float(raw) / 1000 if raw.isdigit() else None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


class Elasticsearch:
    display = "Elasticsearch"
    system = "logs"
    kinds = frozenset({Kind.LOGS})

    def __init__(self, name: str, config: ElasticsearchConfig, client: httpx.AsyncClient, api_key: str = "") -> None:
        self.name = name
        self.config = config
        self.timeout_s = config.timeout_s
        headers = {"Authorization": f"ApiKey {api_key}"} if api_key else {}
        self.http = HttpBackend(
            self.display, client, config.url, config.timeout_s, headers=headers, error_reason=_error_reason
        )

    async def health(self) -> Health:
        answer = await self.http.get_json("/_cluster/health")
        status = dig(self.display, answer, "status", kind=str)
        if status not in ("green", "yellow", "red"):
            raise BadBackendResponse(self.display, "unknown cluster status")
        nodes = dig(self.display, answer, "number_of_nodes", kind=int)
        unassigned = answer.get("unassigned_shards")
        facts = [status, f"{nodes} node" + ("" if nodes == 1 else "s")]
        if isinstance(unassigned, int) and unassigned:
            facts.append(f"{unassigned} unassigned shard" + ("" if unassigned == 1 else "s"))
        return Health(status != "red", ", ".join(facts))

    async def query(self, request: Query) -> Result:
        if not isinstance(request, LogQuery):
            raise BackendQueryError(self.display, "only logs")
        if request.level and request.level not in self.config.levels:
            raise BackendQueryError(self.display, f"no values for level {safe(request.level, 20)}")
        path = f"/{quote(self.config.index, safe=',*:')}/_search"
        answer = await self.http.post_json(path, search_body(self.config, request))
        if not isinstance(answer, dict):
            raise BadBackendResponse(self.display, "not a search answer")
        hits = dig(self.display, answer, "hits", kind=dict)
        lines = [self._line(hit) for hit in dig(self.display, hits, "hits", kind=list)]
        return LogResult(request, tidy(lines, request.limit), self._total(hits.get("total")))

    def _line(self, hit: Any) -> LogLine:
        source = dig(self.display, hit, "_source", kind=dict)
        message = field(source, self.config.message_field)
        when = timestamp(field(source, self.config.timestamp_field))
        if when is None:
            sort = hit.get("sort") if isinstance(hit, dict) else None
            when = timestamp(sort[0]) if isinstance(sort, list) and sort else None
        service = field(source, self.config.service_field)
        return LogLine(when or 0.0, "" if message is None else str(message), "" if service is None else str(service))

    def _total(self, raw: Any) -> int | None:
        """`hits.total`: an object since 7.0 (exact only when `relation` is `eq`), a bare number before."""
        if isinstance(raw, int) and not isinstance(raw, bool):
            return raw
        if isinstance(raw, dict) and raw.get("relation") == "eq" and isinstance(raw.get("value"), int):
            return int(raw["value"])
        return None

    def format(self, result: Result) -> str:
        assert isinstance(result, LogResult)
        return format_logs(result)


def build(name: str, config: Mapping[str, Any], context: BuildContext) -> Elasticsearch:
    return Elasticsearch(name, ElasticsearchConfig(**config), context.client, context.secrets.get(API_KEY_SECRET, ""))
