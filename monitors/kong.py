"""Kong through its Admin API: node status (connections, requests, database) and what a route or
service is configured to do.

What Kong's Admin API knows, and so what a reply can honestly say: `/status` gives node-wide nginx
connection counters, a total request count and whether the database is reachable; a route or
service is only configuration (paths, hosts, methods, protocols, `enabled` on services since 2.7),
plus, when the service points at a Kong upstream, each target's health as this node sees it.
Per-route traffic, latency or error rates exist only through a metrics plugin (prometheus,
statsd, datadog), so a route reply says it has none rather than inventing any.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, Field

from monitors.base import GatewayQuery, Health, Kind, Query, Report, Result
from monitors.errors import BackendQueryError, BadBackendResponse
from monitors.formatting import clip, number, safe
from monitors.http import HttpBackend, dig, parse_json
from monitors.registry import BuildContext

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._~-]{0,127}")
"""Kong's entity names (letters, digits, `. _ ~ -`) and UUIDs; nothing that could be a path."""
PATH = re.compile(r"/[A-Za-z0-9._~!$&'()*+,;=:@%/-]{0,200}")
ROUTES_PAGE = 1000
"""Routes read to find one by path: Kong's largest page."""
MAX_LISTED = 3
REPLY_CHARS = 300
NO_TRAFFIC = "no traffic figures (Admin API has none without a metrics plugin)"
DATABASE = {True: "database reachable", False: "database UNREACHABLE", None: "database not reported"}
ADMIN_TOKEN_SECRET = "kong_admin_token"
"""The secret (from the environment, via BuildContext.secrets) sent as `Kong-Admin-Token` (RBAC)."""


class KongConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelled key is refused, not ignored

    url: str
    """The Admin API (port 8001 by default), not the proxy."""
    timeout_s: float = Field(3.0, gt=0, le=30)


def _error_reason(body: Any) -> str | None:
    return safe(str(body["message"]), 200) if isinstance(body, dict) and "message" in body else None


def segment(name: str) -> str:
    """A validated name as one percent-encoded URL path segment."""
    return quote(name, safe="")


def _listed(values: Any, empty: str) -> str:
    items = [safe(str(v), 40) for v in values] if isinstance(values, list) else []
    if not items:
        return empty
    more = len(items) - MAX_LISTED
    return ", ".join(items[:MAX_LISTED]) + (f" +{more}" if more > 0 else "")


def _count(value: int, noun: str) -> str:
    return f"{number(value)} {noun}" + ("" if value == 1 else "s")


class Kong:
    display = "Kong"
    system = "gateway"
    kinds = frozenset({Kind.GATEWAY})

    def __init__(self, name: str, config: KongConfig, client: httpx.AsyncClient, admin_token: str = "") -> None:
        self.name = name
        self.timeout_s = config.timeout_s
        headers = {"Kong-Admin-Token": admin_token} if admin_token else {}
        self.http = HttpBackend(
            self.display, client, config.url, config.timeout_s, headers=headers, error_reason=_error_reason
        )

    async def health(self) -> Health:
        server, reachable = self._status(await self.http.get_json("/status"))
        active = f"{number(server['connections_active'])} active conns"
        if reachable is False:
            return Health(False, f"database unreachable, {active}")
        return Health(True, active + (", db reachable" if reachable else ""))

    async def query(self, request: Query) -> Result:
        if not isinstance(request, GatewayQuery):
            raise BackendQueryError(self.display, "only gateway questions")
        endpoint = (request.endpoint or "status").strip()
        if endpoint.lower() == "status":
            return self._status_report(await self.http.get_json("/status"))
        if PATH.fullmatch(endpoint):
            return await self._by_path(endpoint)
        if NAME.fullmatch(endpoint):
            return await self._by_name(endpoint)
        raise BackendQueryError(self.display, "not a route or service name")

    # --- /status -------------------------------------------------------------------------------

    def _status(self, answer: Any) -> tuple[dict[str, int], bool | None]:
        """The server counters and database reachability; 0.x and 1.x-3.x share these keys
        (newer versions add `memory` and, DB-less, `configuration_hash`, which are not needed)."""
        server = dig(self.display, answer, "server", kind=dict)
        keys = ("connections_active", "connections_reading", "connections_writing", "connections_waiting",
                "connections_accepted", "connections_handled", "total_requests")  # fmt: skip
        counters = {key: dig(self.display, server, key, kind=int) for key in keys}
        database = answer.get("database") if isinstance(answer, dict) else None
        reachable = database.get("reachable") if isinstance(database, dict) else None
        return counters, reachable if isinstance(reachable, bool) else None

    def _status_report(self, answer: Any) -> Report:
        server, reachable = self._status(answer)
        facts = [
            f"{number(server['connections_active'])} active conns ({number(server['connections_reading'])} reading, "
            f"{number(server['connections_writing'])} writing, {number(server['connections_waiting'])} waiting)",
            f"{number(server['connections_accepted'])} accepted, {number(server['connections_handled'])} handled",
            f"{number(server['total_requests'])} requests since start",
        ]
        dropped = server["connections_accepted"] - server["connections_handled"]
        if dropped > 0:
            facts.append(f"{number(dropped)} conns dropped (resource limits)")
        facts.append(DATABASE[reachable])
        return Report("Kong", tuple(facts))

    # --- routes and services -------------------------------------------------------------------

    async def _get(self, path: str) -> Any:
        """The entity at `path`, or None when Kong has none (404)."""
        status, body = await self.http.request("GET", path, ok=(200, 404))
        if status == 404:
            return None
        answer = parse_json(self.display, body)
        if not isinstance(answer, dict):
            raise BadBackendResponse(self.display, "not an entity")
        return answer

    async def _by_name(self, name: str) -> Report:
        """A route by that name (with its service), else a service by that name."""
        route, service = await asyncio.gather(
            self._get(f"/routes/{segment(name)}"), self._get(f"/services/{segment(name)}")
        )
        shown = safe(name, 40)
        if route is not None:
            return await self._route_report(f"Kong route {shown}", route, service)
        if service is not None:
            return Report(f"Kong service {shown}", (*await self._service_facts(service), NO_TRAFFIC))
        return Report("Kong", (f"no route or service named {shown}",))

    async def _by_path(self, path: str) -> Report:
        """The route Kong would pick for a path: an exact path, else the longest plain prefix
        (regex paths, `~/…`, are not evaluated here)."""
        answer = await self.http.get_json("/routes", params={"size": str(ROUTES_PAGE)})
        routes = [r for r in dig(self.display, answer, "data", kind=list) if isinstance(r, dict)]
        matches = [
            (10_000 if prefix == path else len(prefix), route)
            for route in routes
            for prefix in _plain_paths(route)
            if path.startswith(prefix)
        ]
        shown = safe(path, 60)
        if not matches:
            partial = f" of the first {ROUTES_PAGE}" if answer.get("next") else ""
            return Report("Kong", (f"no route{partial} serves {shown}",))
        route = max(matches, key=lambda match: match[0])[1]
        title = f"Kong route {safe(str(route.get('name') or route.get('id') or '?'), 40)} for {shown}"
        return await self._route_report(title, route, None)

    async def _route_report(self, title: str, route: dict[str, Any], known: dict[str, Any] | None) -> Report:
        facts = [
            "paths " + _listed(route.get("paths"), "any"),
            "methods " + _listed(route.get("methods"), "any"),
            "hosts " + _listed(route.get("hosts"), "any"),
            "protocols " + _listed(route.get("protocols"), "default"),
        ]
        link = route.get("service")
        service_id = link.get("id") if isinstance(link, dict) else None
        if not isinstance(service_id, str) or not NAME.fullmatch(service_id):
            facts.append("no service attached")
        else:
            service = known if known is not None and known.get("id") == service_id else None
            service = service or await self._get(f"/services/{segment(service_id)}")
            if service is None:
                facts.append("its service is missing")
            else:
                name = safe(str(service.get("name") or service_id), 40)
                facts.append(f"service {name}: " + ", ".join(await self._service_facts(service)))
        return Report(title, (*facts, NO_TRAFFIC))

    async def _service_facts(self, service: dict[str, Any]) -> list[str]:
        enabled = service.get("enabled")
        facts = ["DISABLED" if enabled is False else "enabled" if enabled is True else "enabled not reported"]
        if isinstance(service.get("protocol"), str):
            facts.append(f"protocol {safe(service['protocol'], 10)}")
        host = service.get("host")
        if isinstance(host, str) and NAME.fullmatch(host):
            facts.append(await self._targets(host))
        return facts

    async def _targets(self, upstream: str) -> str:
        """Target health of the Kong upstream named like the service's host, as this node sees it."""
        try:
            answer = await self._get(f"/upstreams/{segment(upstream)}/health")
        except BackendQueryError:
            return "target health not available"
        if answer is None:
            return "no Kong upstream (plain host)"
        targets = dig(self.display, answer, "data", kind=list)
        return _health_summary([t.get("health") for t in targets if isinstance(t, dict)])

    def format(self, result: Result) -> str:
        assert isinstance(result, Report)
        return clip(f"{result.title}: {'; '.join(result.facts)}", REPLY_CHARS)


def _plain_paths(route: Mapping[str, Any]) -> list[str]:
    paths = route.get("paths")
    return [p for p in paths if isinstance(p, str) and p and not p.startswith("~")] if isinstance(paths, list) else []


def _health_summary(states: Sequence[Any]) -> str:
    """ "2/3 targets healthy, 1 UNHEALTHY" or "3 targets, health checks off"."""
    if not states:
        return "upstream has no targets"
    counts: dict[str, int] = {}
    for state in states:
        key = str(state).upper() if state else "UNKNOWN"
        counts[key] = counts.get(key, 0) + 1
    if set(counts) == {"HEALTHCHECKS_OFF"}:
        return f"{_count(len(states), 'target')}, health checks off"
    healthy = counts.pop("HEALTHY", 0)
    words = {"UNHEALTHY": "UNHEALTHY", "DNS_ERROR": "DNS error", "HEALTHCHECKS_OFF": "unchecked"}
    rest = [f"{n} {words.get(state, safe(state.lower(), 16))}" for state, n in sorted(counts.items())]
    return ", ".join([f"{healthy}/{len(states)} targets healthy", *rest])


def build(name: str, config: Mapping[str, Any], context: BuildContext) -> Kong:
    return Kong(name, KongConfig(**config), context.client, context.secrets.get(ADMIN_TOKEN_SECRET, ""))
