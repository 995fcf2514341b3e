"""A team's own JSON endpoint (`type: http`): a health, metrics, DB-stats or gateway page read by
the fields the config names.

The section says which answer paths matter ("db.pool.waiting", labelled "waiting") and, for
health, which value means healthy. Headers such as a bearer token are named by environment
variable: the file holds the variable's name, the value is read from the environment when the
monitor is built, and a missing variable stops start-up with the key named, never its value.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from monitors.base import (
    DbQuery,
    GatewayQuery,
    Health,
    Kind,
    MetricQuery,
    MetricResult,
    Query,
    Report,
    Result,
    Sample,
)
from monitors.errors import BackendQueryError, BadBackendResponse
from monitors.formatting import clip, human, number, safe
from monitors.http import HttpBackend, parse_json
from monitors.registry import BuildContext

KINDS: dict[str, frozenset[Kind]] = {
    "health": frozenset(),
    "metrics": frozenset({Kind.METRICS}),
    "db": frozenset({Kind.DB}),
    "gateway": frozenset({Kind.GATEWAY}),
}
QUERY_OF_KIND: dict[str, type] = {"metrics": MetricQuery, "db": DbQuery, "gateway": GatewayQuery}
UNLISTED_SHOWN = 5
"""Top-level values shown when the section names no fields."""
REPLY_LIMIT = 300
DETAIL_LIMIT = 120

_PATH = re.compile(r"[\w\-]+(\.[\w\-]+)*")
_URL = re.compile(r"https?://[^\s/?#]+(/[^\s#]*)?")
_HEADER = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_HEADER_VALUE = re.compile(r"[\x20-\x7e]{1,4096}")


def _dotted(value: str) -> str:
    if len(value) > 200 or not _PATH.fullmatch(value):
        raise ValueError("must be dotted keys such as db.pool.waiting")
    return value


class FieldSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str
    """Dotted keys into the JSON answer; a number steps into a list ("pools.0.waiting")."""
    label: str | None = Field(None, max_length=40)

    _path = field_validator("path")(_dotted)

    @property
    def name(self) -> str:
        return self.label or self.path


class OkWhen(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str
    equals: str | int | float | bool | None

    _path = field_validator("path")(_dotted)


class HttpConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str
    timeout_s: float = Field(3.0, gt=0, le=30)
    kind: Literal["health", "metrics", "db", "gateway"] = "health"
    fields: list[FieldSpec] = Field(default_factory=list)
    ok_when: OkWhen | None = None
    headers_env: dict[str, str] = Field(default_factory=dict)
    """Header name -> the NAME of the environment variable holding its value."""
    system: str | None = None
    """What `health <system>` calls it; the monitor's own name by default."""

    @field_validator("url")
    @classmethod
    def _plain_url(cls, value: str) -> str:
        if not _URL.fullmatch(value):
            raise ValueError("must be an http(s) URL")
        return value

    @field_validator("fields", mode="before")
    @classmethod
    def _paths_or_specs(cls, value: Any) -> Any:
        """A field is a bare path or {path, label}."""
        if isinstance(value, list):
            return [{"path": item} if isinstance(item, str) else item for item in value]
        return value

    @field_validator("headers_env")
    @classmethod
    def _set_in_environment(cls, value: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        environ: Mapping[str, str] = (info.context or {}).get("environ", {})
        for header, variable in value.items():
            if not _HEADER.fullmatch(header) or not _ENV_NAME.fullmatch(variable):
                raise ValueError("header names map to environment variable names")
            if variable not in environ:
                raise ValueError(f"environment variable {variable} is not set")
            if not _HEADER_VALUE.fullmatch(environ[variable]):
                raise ValueError(f"environment variable {variable} is not a usable header value")
        return value


def lookup(display: str, data: Any, path: str) -> Any:
    """The value at a dotted path, or `BadBackendResponse` naming the whole path."""
    current = data
    for step in path.split("."):
        if isinstance(current, dict) and step in current:
            current = current[step]
        elif isinstance(current, list) and step.isdigit() and int(step) < len(current):
            current = current[int(step)]
        else:
            raise BadBackendResponse(display, f"no {path} in answer")
    return current


def show(value: Any) -> str:
    """A JSON value as a few characters of plain text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return number(float(value))
    if value is None:
        return "null"
    if isinstance(value, list):
        return f"{len(value)} items"
    if isinstance(value, dict):
        return f"{len(value)} fields"
    return safe(str(value), 40)


def _same(value: Any, wanted: Any) -> bool:
    if isinstance(value, str) and isinstance(wanted, str):
        return value.strip().casefold() == wanted.strip().casefold()
    if isinstance(value, bool) or isinstance(wanted, bool):
        return value is wanted
    return bool(value == wanted)


class HttpMonitor:
    def __init__(self, name: str, config: HttpConfig, client: httpx.AsyncClient, headers: Mapping[str, str]) -> None:
        self.name = name
        self.display = safe(name, 30)
        self.system = config.system or name
        self.kind = config.kind
        self.kinds = KINDS[config.kind]
        self.timeout_s = config.timeout_s
        self.fields = list(config.fields)
        self.ok_when = config.ok_when
        self.http = HttpBackend(self.display, client, config.url, config.timeout_s, headers)

    async def health(self) -> Health:
        """Up when it answers 200 (and `ok_when` holds); a 503 is an answer too: "not ok"."""
        status, body = await self.http.request("GET", "", ok=(200, 503))
        if status == 503:
            return Health(False, self._detail_of_failure(body))
        answer = parse_json(self.display, body)
        detail = clip(", ".join(self.facts(answer)), DETAIL_LIMIT)
        if self.ok_when is None:
            return Health(True, detail)
        return Health(_same(lookup(self.display, answer, self.ok_when.path), self.ok_when.equals), detail)

    def _detail_of_failure(self, body: bytes) -> str:
        """What an unhealthy answer says, when it says it in the expected shape."""
        try:
            return clip(", ".join(self.facts(parse_json(self.display, body))), DETAIL_LIMIT) or "HTTP 503"
        except BadBackendResponse:
            return "HTTP 503"

    async def query(self, request: Query) -> Result:
        wanted = QUERY_OF_KIND.get(self.kind)
        if wanted is None or not isinstance(request, wanted):
            raise BackendQueryError(self.display, f"only {self.kind}")
        answer = await self.http.get_json("")
        if isinstance(request, MetricQuery):
            return self._metric(request, answer)
        facts = self.facts(answer, request.metric if isinstance(request, DbQuery) else None)
        return Report(self.display, tuple(facts))

    def facts(self, answer: Any, about: str | None = None) -> list[str]:
        """ "label value" for each configured field (those matching `about`, when any do), or the
        answer's first plain top-level values when no fields are configured."""
        if not self.fields:
            if not isinstance(answer, dict):
                raise BadBackendResponse(self.display, "not a JSON object")
            plain = [(k, v) for k, v in answer.items() if not isinstance(v, (dict, list))]
            return [f"{safe(str(k), 30)} {show(v)}" for k, v in plain[:UNLISTED_SHOWN]]
        fields = self.fields
        if about:
            chosen = [f for f in fields if about.lower() in f.name.lower() or about.lower() in f.path.lower()]
            fields = chosen or fields
        return [f"{safe(f.name, 30)} {show(lookup(self.display, answer, f.path))}" for f in fields]

    def _metric(self, request: MetricQuery, answer: Any) -> MetricResult:
        field = next((f for f in self.fields if request.metric in (f.name, f.path, f.path.rsplit(".", 1)[-1])), None)
        if field is None or request.raw:
            raise BackendQueryError(self.display, f"no {safe(request.metric, 30)} among its fields")
        value = lookup(self.display, answer, field.path)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise BadBackendResponse(self.display, f"{field.path} is not a number")
        return MetricResult(request, samples=(Sample({}, float(value)),))

    def format(self, result: Result) -> str:
        if isinstance(result, MetricResult):
            query = result.query
            value = human(result.samples[0].value) if result.samples else "no data"
            caveats = [c for c in (
                f"not per service ({safe(query.service, 20)})" if query.service else "",
                "no history, value now" if query.range_s else "",
            ) if c]  # fmt: skip
            note = f" ({'; '.join(caveats)})" if caveats else ""
            return clip(f"{self.display} {safe(query.metric, 30)}: {value}{note}", REPLY_LIMIT)
        assert isinstance(result, Report)
        facts = ", ".join(result.facts) or "no figures"
        return clip(f"{result.title}: {facts}", REPLY_LIMIT)


def resolve_headers(headers_env: Mapping[str, str], environ: Mapping[str, str]) -> dict[str, str]:
    return {header: environ[variable] for header, variable in headers_env.items()}


def build(name: str, config: Mapping[str, Any], context: BuildContext) -> HttpMonitor:
    return build_with(name, config, context, os.environ)


def build_with(name: str, config: Mapping[str, Any], context: BuildContext, environ: Mapping[str, str]) -> HttpMonitor:
    """`build` with the environment given (tests pass a mapping instead of patching `os.environ`)."""
    settings = HttpConfig.model_validate(dict(config), context={"environ": environ})
    return HttpMonitor(name, settings, context.client, resolve_headers(settings.headers_env, environ))
