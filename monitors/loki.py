"""Loki: newest matching log lines from /loki/api/v1/query_range, health from /ready.

The LogQL is assembled from parts, never from the user's words: a stream selector from config
(the service label, or a base selector matching every stream), then one `|= "term"` line filter
per search word and the level's filter. Every user value goes in as an escaped LogQL string, so a
word like `"} |~ ".*` stays a word Loki searches for.

Levels are line filters by default, a case-insensitive whole-word regex on the line:

    error  |~ `(?i)\\b(error|fatal|panic|critical|exception)\\b`

A label (`{level="error"}`) or a parser stage (`| logfmt | level="error"`) would be exact, but only
where the team's logs carry that label or format: a label nobody sets matches nothing, and a parser
drops every line it cannot parse. A line filter works on plain text, JSON and logfmt alike, runs
before any parsing (Loki's cheapest stage), and the word boundary keeps "0 errors" from counting as
an error. Teams with a level label or structured metadata set `levels:` to their own stage.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator

from monitors.base import Health, Kind, LogLine, LogQuery, LogResult, Query, Result
from monitors.errors import BackendQueryError, BadBackendResponse, scrub
from monitors.formatting import safe
from monitors.http import HttpBackend, dig, parse_json
from monitors.logs_format import format_logs, tidy
from monitors.registry import BuildContext

LABEL_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
DEFAULT_LEVELS = {
    "error": r"|~ `(?i)\b(error|fatal|panic|critical|exception)\b`",
    "warn": r"|~ `(?i)\b(warn|warning)\b`",
    "info": r"|~ `(?i)\binfo\b`",
}
"""Level -> a LogQL pipeline stage; see the module docstring for why line filters."""
REASON_BYTES = 1000
"""Of a plain-text error body, how much is read for the reason (the reason is cut to 80 anyway)."""


class LokiConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelled key is refused, not ignored

    url: str
    timeout_s: float = Field(3.0, gt=0, le=30)
    service_label: str = Field("service", pattern=LABEL_NAME)
    """The stream label naming a service (`service`, `app`, `service_name`, `container`)."""
    base_selector: str = '{job=~".+"}'
    """The stream selector when no service is asked for; Loki needs at least one non-empty matcher."""
    levels: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_LEVELS))
    tenant: str | None = Field(None, pattern=r"^[A-Za-z0-9!._*'()-]{1,150}$")
    """`X-Scope-OrgID` for a multi-tenant Loki."""
    fetch_lines: int = Field(100, ge=1, le=5000)
    """Lines asked for, newest first; more than shown, so repeats can be folded."""

    @field_validator("base_selector")
    @classmethod
    def _selector(cls, value: str) -> str:
        if not (value.startswith("{") and value.endswith("}")) or "\n" in value or len(value) > 200:
            raise ValueError('must be one stream selector like {job=~".+"}')
        return value

    @field_validator("levels")
    @classmethod
    def _stages(cls, value: dict[str, str]) -> dict[str, str]:
        if any(not stage.lstrip().startswith("|") or "\n" in stage for stage in value.values()):
            raise ValueError("each level must be one LogQL pipeline stage starting with |")
        return value


def logql_string(value: str) -> str:
    """A LogQL double-quoted string (Go syntax) holding `value` exactly.

    JSON's escapes without `ensure_ascii` (\\\\, \\", \\n, \\t, \\uXXXX for other control characters)
    are all Go escapes meaning the same; lone surrogates, which Go cannot read, become "?".
    """
    return json.dumps(value.encode("utf-8", "replace").decode("utf-8"), ensure_ascii=False)


def _error_reason(text: str) -> str:
    return scrub(safe(text, 200)) or "query failed"


class Loki:
    display = "Loki"
    system = "logs"
    kinds = frozenset({Kind.LOGS})

    def __init__(self, name: str, config: LokiConfig, client: httpx.AsyncClient) -> None:
        self.name = name
        self.config = config
        self.timeout_s = config.timeout_s
        headers = {"X-Scope-OrgID": config.tenant} if config.tenant else {}
        self.http = HttpBackend(self.display, client, config.url, config.timeout_s, headers=headers)

    async def health(self) -> Health:
        status, _ = await self.http.request("GET", "/ready", ok=(200, 503))
        return Health(True, "ready") if status == 200 else Health(False, "not ready")

    async def query(self, request: Query) -> Result:
        if not isinstance(request, LogQuery):
            raise BackendQueryError(self.display, "only logs")
        end = time.time_ns()
        params = {
            "query": self.logql(request),
            "start": str(end - request.range_s * 1_000_000_000),
            "end": str(end),
            "limit": str(max(self.config.fetch_lines, request.limit)),
            "direction": "backward",
        }
        status, body = await self.http.request("GET", "/loki/api/v1/query_range", params=params, ok=(200, 400))
        if status == 400:
            raise BackendQueryError(self.display, _error_reason(body[:REASON_BYTES].decode("utf-8", "replace")))
        lines = self._lines(parse_json(self.display, body))
        total = len(lines) if len(lines) < int(params["limit"]) else None
        return LogResult(request, tidy(lines, request.limit), total)

    def logql(self, request: LogQuery) -> str:
        """The query as data joined: selector, then a line filter per term, then the level's stage."""
        if request.service:
            parts = ["{" + self.config.service_label + "=" + logql_string(request.service) + "}"]
        else:
            parts = [self.config.base_selector]
        parts += [f"|= {logql_string(term)}" for term in request.terms if term]
        if request.level:
            stage = self.config.levels.get(request.level)
            if stage is None:
                raise BackendQueryError(self.display, f"no filter for level {safe(request.level, 20)}")
            parts.append(stage.strip())
        return " ".join(parts)

    def _lines(self, answer: Any) -> list[LogLine]:
        if dig(self.display, answer, "status") != "success":
            raise BadBackendResponse(self.display, "query did not succeed")
        data = dig(self.display, answer, "data", kind=dict)
        if dig(self.display, data, "resultType") != "streams":
            raise BadBackendResponse(self.display, "not log streams")
        lines: list[LogLine] = []
        for stream in dig(self.display, data, "result", kind=list):
            labels = dig(self.display, stream, "stream", kind=dict)
            source = str(labels.get(self.config.service_label) or labels.get("job") or "")
            lines += [self._line(entry, source) for entry in dig(self.display, stream, "values", kind=list)]
        return lines

    def _line(self, entry: Any, source: str) -> LogLine:
        """One `[timestamp, line]` pair (Loki 3 may add a third item, structured metadata)."""
        return LogLine(self._seconds(dig(self.display, entry, 0)), dig(self.display, entry, 1, kind=str), source)

    def _seconds(self, raw: Any) -> float:
        """Loki's timestamps are nanosecond integers written as strings; anything else breaks its API."""
        if not isinstance(raw, str) or not re.fullmatch(r"\d{1,20}", raw):
            raise BadBackendResponse(self.display, "timestamp is not a number")
        return int(raw) / 1e9

    def format(self, result: Result) -> str:
        assert isinstance(result, LogResult)
        return format_logs(result)


def build(name: str, config: Mapping[str, Any], context: BuildContext) -> Loki:
    return Loki(name, LokiConfig(**config), context.client)
