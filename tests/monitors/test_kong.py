"""Kong's Admin API against its recorded `/status` payloads and documented entity examples (respx
replays them and checks the exact paths asked), and against a loopback server that misbehaves.

No Debian package ships Kong, so there is no real server here. The `/status` bodies are the files
in tests/fixtures/kong (see SOURCES.md); the route, service and upstream-health bodies below are
the Admin API reference's own examples (Kong/kong `autodoc/admin-api/data/admin-api.lua`)."""

from __future__ import annotations

import json
import time
import tracemalloc
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from monitors.base import GatewayQuery, Health, Report
from monitors.errors import (
    BackendAuthError,
    BackendError,
    BackendQueryError,
    BackendTimeout,
    BackendUnavailable,
    BadBackendResponse,
    describe,
)
from monitors.http import new_client
from monitors.kong import NO_TRAFFIC, Kong, KongConfig
from monitors.registry import BuildContext, build_monitors
from tests.servers import FaultServer, refused_url

pytestmark = pytest.mark.anyio
FIXTURES = Path(__file__).parent.parent / "fixtures" / "kong"
KONG = "http://kong.test:8001"
SERVICE_ID = "af8330d3-dbdc-48bd-b1be-55b98608834b"
ROUTE = {
    "id": "d35165e2-d03e-461a-bdeb-dad0a112abfe", "created_at": 1422386534, "updated_at": 1422386534,
    "name": "my-route", "protocols": ["http", "https"], "methods": ["GET", "POST"],
    "hosts": ["example.com", "foo.test"], "paths": ["/foo", "/bar"],
    "headers": {"x-another-header": ["bla"], "x-my-header": ["foo", "bar"]},
    "https_redirect_status_code": 426, "regex_priority": 0, "strip_path": True, "path_handling": "v0",
    "preserve_host": False, "request_buffering": True, "response_buffering": True,
    "tags": ["user-level", "low-priority"], "service": {"id": SERVICE_ID},
}  # fmt: skip
SERVICE = {
    "id": SERVICE_ID, "created_at": 1422386534, "updated_at": 1422386534, "name": "my-service", "retries": 5,
    "protocol": "http", "host": "example.com", "port": 80, "path": "/some_api", "connect_timeout": 60000,
    "write_timeout": 60000, "read_timeout": 60000, "tags": ["user-level", "low-priority"],
    "client_certificate": {"id": "4e3ad2e4-0bc4-4638-8e34-c84a417ba39b"}, "tls_verify": True,
    "tls_verify_depth": None, "ca_certificates": ["4e3ad2e4-0bc4-4638-8e34-c84a417ba39b"], "enabled": True,
}  # fmt: skip
UPSTREAM_HEALTH: dict[str, Any] = {
    "total": 2,
    "node_id": "cbb297c0-14a9-46bc-ad91-1d0ef9b42df9",
    "data": [
        {"created_at": 1485524883980, "id": "18c0ad90-f942-4098-88db-bbee3e43b27f", "health": "HEALTHY",
         "target": "127.0.0.1:20000", "upstream_id": "07131005-ba30-4204-a29f-0927d53257b4", "weight": 100},
        {"created_at": 1485524914883, "id": "6c6f34eb-e6c3-4c1f-ac58-4060e5bca890", "health": "UNHEALTHY",
         "target": "127.0.0.1:20002", "upstream_id": "07131005-ba30-4204-a29f-0927d53257b4", "weight": 200},
    ],
}  # fmt: skip
NOT_FOUND = httpx.Response(404, json={"message": "Not found"})
ROUTE_FACTS = "paths /foo, /bar; methods GET, POST; hosts example.com, foo.test; protocols http, https"


def kong(client: httpx.AsyncClient, url: str = KONG, timeout_s: float = 3.0) -> Kong:
    return Kong("kong", KongConfig(url=url, timeout_s=timeout_s), client)


async def ask(url: str, endpoint: str | None = None, timeout_s: float = 3.0) -> str:
    async with new_client() as client:
        monitor = kong(client, url, timeout_s)
        return monitor.format(await monitor.query(GatewayQuery(endpoint)))


def fixture(name: str) -> httpx.Response:
    return httpx.Response(200, content=(FIXTURES / name).read_bytes())


def paths(router: respx.MockRouter) -> list[str]:
    return sorted(call.request.url.raw_path.decode() for call in router.calls)


# --- /status -----------------------------------------------------------------------------------

STATUS = ("Kong: 1 active conns (0 reading, 1 writing, 0 waiting); 1 accepted, 1 handled; 3 requests since start; "
          "database reachable")  # fmt: skip


@pytest.mark.parametrize("recorded", ["admin_status_response.json", "admin_status_response_legacy_0x.json"])
@pytest.mark.parametrize("endpoint", [None, "status", "Status"])
async def test_status_from_both_recorded_shapes(
    respx_mock: respx.MockRouter, recorded: str, endpoint: str | None
) -> None:
    respx_mock.get(f"{KONG}/status").mock(return_value=fixture(recorded))
    assert await ask(KONG, endpoint) == STATUS
    assert paths(respx_mock) == ["/status"]


async def test_health_from_status(respx_mock: respx.MockRouter) -> None:
    recorded = json.loads((FIXTURES / "admin_status_response.json").read_text())
    route = respx_mock.get(f"{KONG}/status")
    async with new_client() as client:
        route.mock(return_value=httpx.Response(200, json=recorded))
        assert await kong(client).health() == Health(True, "1 active conns, db reachable")
        route.mock(return_value=httpx.Response(200, json={**recorded, "database": {"reachable": False}}))
        assert await kong(client).health() == Health(False, "database unreachable, 1 active conns")
        route.mock(return_value=httpx.Response(200, json={"server": recorded["server"]}))
        assert await kong(client).health() == Health(True, "1 active conns")


async def test_dropped_connections_and_an_unreachable_database_are_said(respx_mock: respx.MockRouter) -> None:
    server = {"total_requests": 1_234_567, "connections_active": 40, "connections_accepted": 5000,
              "connections_handled": 4990, "connections_reading": 2, "connections_writing": 8, "connections_waiting": 30}  # fmt: skip
    respx_mock.get(f"{KONG}/status").mock(
        return_value=httpx.Response(200, json={"server": server, "database": {"reachable": False}})
    )
    assert await ask(KONG) == (
        "Kong: 40 active conns (2 reading, 8 writing, 30 waiting); 5k accepted, 4.99k handled; 1.23M requests since "
        "start; 10 conns dropped (resource limits); database UNREACHABLE"
    )


# --- routes and services by name ----------------------------------------------------------------


async def test_a_route_with_its_service_and_a_plain_host(respx_mock: respx.MockRouter) -> None:
    respx_mock.get(f"{KONG}/routes/my-route").mock(return_value=httpx.Response(200, json=ROUTE))
    respx_mock.get(f"{KONG}/services/my-route").mock(return_value=NOT_FOUND)
    respx_mock.get(f"{KONG}/services/{SERVICE_ID}").mock(return_value=httpx.Response(200, json=SERVICE))
    respx_mock.get(f"{KONG}/upstreams/example.com/health").mock(return_value=NOT_FOUND)
    text = await ask(KONG, "my-route")
    assert text == (
        f"Kong route my-route: {ROUTE_FACTS}; service my-service: enabled, protocol http, no Kong upstream "
        f"(plain host); {NO_TRAFFIC}"
    )
    assert len(text) <= 300
    assert paths(respx_mock) == [
        "/routes/my-route",
        f"/services/{SERVICE_ID}",
        "/services/my-route",
        "/upstreams/example.com/health",
    ]


async def test_a_route_behind_a_kong_upstream_reports_target_health(respx_mock: respx.MockRouter) -> None:
    route = {**ROUTE, "name": "checkout", "methods": None, "hosts": None, "paths": ["/checkout"]}
    service = {**SERVICE, "name": "checkout", "host": "checkout.upstream"}
    respx_mock.get(f"{KONG}/routes/checkout").mock(return_value=httpx.Response(200, json=route))
    respx_mock.get(f"{KONG}/services/checkout").mock(return_value=httpx.Response(200, json=service))
    respx_mock.get(f"{KONG}/upstreams/checkout.upstream/health").mock(
        return_value=httpx.Response(200, json=UPSTREAM_HEALTH)
    )
    text = await ask(KONG, "checkout")
    assert text == (
        "Kong route checkout: paths /checkout; methods any; hosts any; protocols http, https; service checkout: "
        f"enabled, protocol http, 1/2 targets healthy, 1 UNHEALTHY; {NO_TRAFFIC}"
    )
    # The service found by name is the route's own: it is not asked for twice.
    assert paths(respx_mock) == ["/routes/checkout", "/services/checkout", "/upstreams/checkout.upstream/health"]


async def test_a_service_by_name(respx_mock: respx.MockRouter) -> None:
    respx_mock.get(f"{KONG}/routes/my-service").mock(return_value=NOT_FOUND)
    respx_mock.get(f"{KONG}/services/my-service").mock(
        return_value=httpx.Response(200, json={**SERVICE, "enabled": False})
    )
    off = {**UPSTREAM_HEALTH, "data": [{**t, "health": "HEALTHCHECKS_OFF"} for t in UPSTREAM_HEALTH["data"]]}
    respx_mock.get(f"{KONG}/upstreams/example.com/health").mock(return_value=httpx.Response(200, json=off))
    assert await ask(KONG, "my-service") == (
        f"Kong service my-service: DISABLED; protocol http; 2 targets, health checks off; {NO_TRAFFIC}"
    )


async def test_nothing_by_that_name_is_an_answer_not_an_error(respx_mock: respx.MockRouter) -> None:
    respx_mock.get(f"{KONG}/routes/payments").mock(return_value=NOT_FOUND)
    respx_mock.get(f"{KONG}/services/payments").mock(return_value=NOT_FOUND)
    assert await ask(KONG, "payments") == "Kong: no route or service named payments"


@pytest.mark.parametrize(
    ("states", "summary"),
    [
        ([], "upstream has no targets"),
        (["HEALTHY", "HEALTHY"], "2/2 targets healthy"),
        (
            ["HEALTHY", "DNS_ERROR", "UNHEALTHY", "HEALTHCHECKS_OFF"],
            "1/4 targets healthy, 1 DNS error, 1 unchecked, 1 UNHEALTHY",
        ),
        (["HEALTHCHECKS_OFF"], "1 target, health checks off"),
        ([None, "WEIRD\x07"], "0/2 targets healthy, 1 unknown, 1 weird"),
    ],
)
async def test_target_health_summaries(respx_mock: respx.MockRouter, states: list[Any], summary: str) -> None:
    respx_mock.get(f"{KONG}/routes/my-service").mock(return_value=NOT_FOUND)
    respx_mock.get(f"{KONG}/services/my-service").mock(return_value=httpx.Response(200, json=SERVICE))
    targets = [{"target": "10.0.0.1:80", "health": state} for state in states]
    respx_mock.get(f"{KONG}/upstreams/example.com/health").mock(
        return_value=httpx.Response(200, json={"total": len(targets), "data": targets})
    )
    text = await ask(KONG, "my-service")
    assert text == f"Kong service my-service: enabled; protocol http; {summary}; {NO_TRAFFIC}"
    assert "10.0.0.1" not in text


async def test_target_health_refused_by_the_node_is_said_not_failed(respx_mock: respx.MockRouter) -> None:
    # A hybrid-mode control plane has no balancer to ask.
    respx_mock.get(f"{KONG}/routes/my-service").mock(return_value=NOT_FOUND)
    respx_mock.get(f"{KONG}/services/my-service").mock(return_value=httpx.Response(200, json=SERVICE))
    respx_mock.get(f"{KONG}/upstreams/example.com/health").mock(
        return_value=httpx.Response(400, json={"message": "not available on a control plane"})
    )
    assert "target health not available" in await ask(KONG, "my-service")


async def test_a_route_without_a_service(respx_mock: respx.MockRouter) -> None:
    respx_mock.get(f"{KONG}/routes/my-route").mock(return_value=httpx.Response(200, json={**ROUTE, "service": None}))
    respx_mock.get(f"{KONG}/services/my-route").mock(return_value=NOT_FOUND)
    assert await ask(KONG, "my-route") == f"Kong route my-route: {ROUTE_FACTS}; no service attached; {NO_TRAFFIC}"


async def test_names_are_one_encoded_path_segment(respx_mock: respx.MockRouter) -> None:
    respx_mock.get(f"{KONG}/routes/v1.2~beta_x").mock(return_value=NOT_FOUND)
    respx_mock.get(f"{KONG}/services/v1.2~beta_x").mock(return_value=NOT_FOUND)
    assert await ask(KONG, "v1.2~beta_x") == "Kong: no route or service named v1.2~beta_x"


@pytest.mark.parametrize(
    "name", ["../status", "a/../../b", "x?size=1", "a b", "..", "%2e%2e", "name#frag", 'x"y', "a\nb", "r" * 200]
)
async def test_hostile_names_are_refused_before_any_request(respx_mock: respx.MockRouter, name: str) -> None:
    with pytest.raises(BackendQueryError) as caught:
        await ask(KONG, name)
    assert describe(caught.value) == "Kong: query rejected: not a route or service name"
    assert not respx_mock.calls


# --- routes by path -----------------------------------------------------------------------------


async def test_a_path_finds_the_route_kong_would_pick(respx_mock: respx.MockRouter) -> None:
    routes = [
        {**ROUTE, "name": "regex", "paths": ["~/foo/bar$"]},
        ROUTE,
        {**ROUTE, "name": "deeper", "id": "x", "paths": ["/foo/ba"], "service": None},
        {**ROUTE, "name": "exact", "id": "y", "paths": ["/foo/bar/baz"], "service": None},
    ]
    listing = respx_mock.get(f"{KONG}/routes").mock(
        return_value=httpx.Response(200, json={"data": routes, "next": None})
    )
    assert await ask(KONG, "/foo/bar") == (
        f"Kong route deeper for /foo/bar: {ROUTE_FACTS.replace('/foo, /bar', '/foo/ba')}; no service attached; {NO_TRAFFIC}"
    )
    assert dict(listing.calls.last.request.url.params) == {"size": "1000"}
    assert (await ask(KONG, "/foo/bar/baz")).startswith("Kong route exact for /foo/bar/baz:")


async def test_a_path_no_route_serves(respx_mock: respx.MockRouter) -> None:
    listing = respx_mock.get(f"{KONG}/routes")
    listing.mock(return_value=httpx.Response(200, json={"data": [ROUTE], "next": None}))
    assert await ask(KONG, "/nothing") == "Kong: no route serves /nothing"
    listing.mock(return_value=httpx.Response(200, json={"data": [ROUTE], "next": "/routes?offset=abc"}))
    assert await ask(KONG, "/nothing") == "Kong: no route of the first 1000 serves /nothing"


# --- config -------------------------------------------------------------------------------------


async def test_built_from_config_with_an_admin_token(respx_mock: respx.MockRouter) -> None:
    route = respx_mock.get(f"{KONG}/status").mock(return_value=fixture("admin_status_response.json"))
    async with new_client() as client:
        context = BuildContext(client=client, secrets={"kong_admin_token": "t0k"})
        monitor = build_monitors({"kong": {"url": KONG}}, context, guard=False).get("kong")
        assert isinstance(monitor, Kong) and monitor.system == "gateway"
        assert (await monitor.health()).ok
    assert route.calls.last.request.headers["Kong-Admin-Token"] == "t0k"


# --- faults, on a loopback server ----------------------------------------------------------------


async def test_a_hung_backend_times_out_on_time(fault_server: FaultServer) -> None:
    fault_server.hang()
    started = time.monotonic()
    with pytest.raises(BackendTimeout) as caught:
        await ask(fault_server.url, timeout_s=0.5)
    assert time.monotonic() - started < 1.5
    assert describe(caught.value) == "Kong: timed out after 0.5 s"


@pytest.mark.parametrize(
    ("status", "error", "text"),
    [
        (500, BackendError, "Kong: failed (HTTP 500)"),
        (503, BackendUnavailable, "Kong: unreachable (HTTP 503)"),
        (401, BackendAuthError, "Kong: access denied (HTTP 401), check credentials"),
        (403, BackendAuthError, "Kong: access denied (HTTP 403), check credentials"),
    ],
)
@pytest.mark.parametrize("endpoint", ["status", "my-route"])
async def test_http_errors(
    fault_server: FaultServer, status: int, error: type[BackendError], text: str, endpoint: str
) -> None:
    fault_server.answer(status, b'{"message": "secret-internal-detail"}')
    with pytest.raises(error) as caught:
        await ask(fault_server.url, endpoint)
    assert describe(caught.value) == text


@pytest.mark.parametrize(
    ("endpoint", "body"),
    [
        pytest.param("status", b"<html>proxy error</html>", id="not-json"),
        pytest.param("status", b"[]", id="status-a-list"),
        pytest.param("status", b'{"database": {"reachable": true}}', id="no-server"),
        pytest.param("status", b'{"server": {"connections_active": "1"}}', id="counters-not-numbers"),
        pytest.param("my-route", b"[1, 2]", id="route-not-an-object"),
        pytest.param("my-route", b"{not json", id="route-not-json"),
        pytest.param("/foo", b'{"data": {"a": 1}}', id="listing-not-a-list"),
        pytest.param("/foo", b"[]", id="listing-a-list"),
    ],
)
async def test_garbage_answers(fault_server: FaultServer, endpoint: str, body: bytes) -> None:
    fault_server.answer(200, body)
    with pytest.raises(BadBackendResponse) as caught:
        await ask(fault_server.url, endpoint)
    assert describe(caught.value).startswith("Kong: unreadable answer")


async def test_connection_refused() -> None:
    with pytest.raises(BackendUnavailable) as caught:
        await ask(refused_url())
    assert describe(caught.value) == "Kong: unreachable (cannot connect)"


async def test_a_huge_answer_is_refused_with_bounded_memory(fault_server: FaultServer) -> None:
    fault_server.answer(200, b"", endless=True)
    tracemalloc.start()
    try:
        with pytest.raises(BadBackendResponse) as caught:
            await ask(fault_server.url, timeout_s=10)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert describe(caught.value) == "Kong: unreadable answer (answer too large)"
    assert peak < 16 * 2**20


async def test_hostile_values_stay_one_short_safe_line(fault_server: FaultServer) -> None:
    # The loopback server gives the same body for every path: the route, then its "service".
    evil = {**ROUTE, "name": "r\n\x07" + "n" * 500, "paths": ["/a\r\nSTOP\x1b[2J" + "p" * 400] * 9,
            "methods": ["GET\x00"], "hosts": ["h\u2603st"], "service": {"id": SERVICE_ID}}  # fmt: skip
    fault_server.answer(200, json.dumps(evil))
    text = await ask(fault_server.url, "my-route")
    assert len(text) <= 300 and "\n" not in text
    assert all(ch.isprintable() and ch.isascii() for ch in text)
    assert text.startswith("Kong route my-route: paths /a STOP [2J")
    assert "; methods GET; hosts h?st; " in text and "; service r nnn" in text
    assert sorted(fault_server.behaviour.seen) == ["/routes/my-route", f"/services/{SERVICE_ID}", "/services/my-route"]


async def test_the_guard_deadline_covers_every_request_of_a_lookup(fault_server: FaultServer) -> None:
    from monitors.resilience import Guarded

    fault_server.hang()
    async with new_client() as client:
        guarded = Guarded(kong(client, fault_server.url, 0.5))
        started = time.monotonic()
        with pytest.raises(BackendTimeout):
            await guarded.query(GatewayQuery("my-route"))
        assert time.monotonic() - started < 1.5


def test_reports_are_what_format_reads() -> None:
    monitor = kong(new_client())
    assert monitor.format(Report("Kong", ("a", "b"))) == "Kong: a; b"
    assert len(monitor.format(Report("Kong", tuple("x" * 50 for _ in range(20))))) <= 300
