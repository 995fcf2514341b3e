"""Amazon API Gateway (REST APIs) through boto3: which APIs exist, and one API's stages and routes.

`gateway` or `gateway status` lists the account's REST APIs in the region; `gateway orders` finds
the API named "orders" and says which stages are deployed and which resource paths it serves.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from monitors.aws import AwsBackend, AwsConfig, deadline
from monitors.base import GatewayQuery, Health, Kind, Query, Report, Result
from monitors.errors import BackendQueryError, BadBackendResponse
from monitors.formatting import clip, duration, safe
from monitors.registry import BuildContext

PAGE = 500
"""REST APIs and resources read per call (API Gateway's maximum)."""
NAMES_SHOWN = 5
REPLY_LIMIT = 300


class ApiGatewayConfig(AwsConfig):
    pass


class ApiGateway:
    display = "API Gateway"
    system = "gateway"
    kinds = frozenset({Kind.GATEWAY})

    def __init__(self, name: str, config: ApiGatewayConfig) -> None:
        self.name = name
        self.timeout_s = config.timeout_s
        self.api = AwsBackend(self.display, "apigateway", config)

    async def health(self) -> Health:
        async with deadline(self.display, self.timeout_s):
            await self.api.call("get_rest_apis", limit=1)
        return Health(True, "reachable")

    async def query(self, request: Query) -> Result:
        if not isinstance(request, GatewayQuery):
            raise BackendQueryError(self.display, "only gateway questions")
        async with deadline(self.display, self.timeout_s):
            apis, more = await self._apis()
            endpoint = (request.endpoint or "").strip()
            if endpoint.lower() in ("", "status"):
                return _overview(apis, more)
            match = next((a for a in apis if endpoint.lower() in (_text(a, "name").lower(), _text(a, "id"))), None)
            if match is None:
                names = ", ".join(safe(_text(a, "name"), 20) for a in apis[:NAMES_SHOWN]) or "none"
                return Report(self.display, (f"no REST API named {safe(endpoint, 30)}", f"have {names}"))
            return await self._detail(match)

    async def _apis(self) -> tuple[list[Mapping[str, Any]], bool]:
        answer = await self.api.call("get_rest_apis", limit=PAGE)
        return _items(self.display, answer), bool(answer.get("position"))

    async def _detail(self, api: Mapping[str, Any]) -> Report:
        api_id = _text(api, "id")
        stages = _items(self.display, await self.api.call("get_stages", restApiId=api_id))
        resources = await self.api.call("get_resources", restApiId=api_id, limit=PAGE)
        paths = sorted(_text(r, "path") for r in _items(self.display, resources))
        return Report(safe(_text(api, "name"), 30), (_stages(stages), _paths(paths, bool(resources.get("position")))))

    def format(self, result: Result) -> str:
        assert isinstance(result, Report)
        return format_report(result)


def format_report(report: Report) -> str:
    return clip(f"{report.title}: {'; '.join(report.facts)}", REPLY_LIMIT)


def _overview(apis: Sequence[Mapping[str, Any]], more: bool) -> Report:
    count = f"{len(apis)}{'+' if more else ''}"
    if not apis:
        return Report("API Gateway", ("no REST APIs in this region",))
    names = [safe(_text(a, "name"), 20) for a in apis[:NAMES_SHOWN]]
    rest = len(apis) - len(names)
    listed = ", ".join(names) + (f" (+{rest} more)" if rest > 0 else "")
    return Report("API Gateway", (f"{count} REST API{'s' if len(apis) != 1 or more else ''}: {listed}",))


def _stages(stages: Sequence[Mapping[str, Any]]) -> str:
    if not stages:
        return "no stages deployed"
    now = time.time()
    named = []
    for stage in stages[:NAMES_SHOWN]:
        updated = stage.get("lastUpdatedDate") or stage.get("createdDate")
        age = f" ({duration(now - updated.timestamp())} ago)" if isinstance(updated, datetime) else ""
        named.append(safe(_text(stage, "stageName"), 20) + age)
    return f"stage{'s' if len(stages) != 1 else ''} " + ", ".join(named)


def _paths(paths: Sequence[str], more: bool) -> str:
    shown = ", ".join(safe(p, 30) for p in paths[:NAMES_SHOWN])
    rest = len(paths) - min(len(paths), NAMES_SHOWN)
    count = f"{len(paths)}{'+' if more else ''}"
    return f"{count} resource{'s' if len(paths) != 1 else ''}: {shown}" + (f" (+{rest} more)" if rest else "")


def _items(display: str, answer: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    items = answer.get("items", answer.get("item"))
    if items is None:
        return []  # API Gateway leaves the key out when there is nothing
    if not isinstance(items, list) or not all(isinstance(i, Mapping) for i in items):
        raise BadBackendResponse(display, "no items in answer")
    return items


def _text(item: Mapping[str, Any], key: str) -> str:
    value = item.get(key)
    return value if isinstance(value, str) else ""


def build(name: str, config: Mapping[str, Any], context: BuildContext) -> ApiGateway:
    return ApiGateway(name, ApiGatewayConfig(**config))
