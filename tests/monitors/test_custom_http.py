"""A team's own JSON endpoint (`type: http`) against a real loopback server answering JSON the test
defines, and every way such an endpoint can misbehave."""

from __future__ import annotations

import json
import time
import tracemalloc
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from monitors.base import DbQuery, GatewayQuery, Health, Kind, LogQuery, MetricQuery
from monitors.custom_http import HttpConfig, HttpMonitor, build_with, lookup, show
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
from monitors.registry import BuildContext, MonitorConfigError, build_monitors
from monitors.resilience import Guarded
from tests.servers import FaultServer, refused_url

pytestmark = pytest.mark.anyio
HANG_S = 3.0
"""How long a hung server keeps a request: past every deadline tested, short enough that its late
answer to a closed socket lands while the session is still running."""
STATUS = {"status": "ok", "latency_ms": 12, "version": "2.4.1",
          "db": {"connections": {"active": 7, "idle": 13}, "pool": {"waiting": 3, "size": 20}},
          "queues": [{"name": "email", "depth": 42}]}  # fmt: skip
DB_FIELDS: list[Any] = [{"path": "db.connections.active", "label": "active"}, {"path": "db.connections.idle", "label": "idle"},
                        {"path": "db.pool.waiting", "label": "waiting"}]  # fmt: skip


def make(url: str, client: httpx.AsyncClient, name: str = "orders_api", **config: Any) -> HttpMonitor:
    return build_with(name, {"url": url, **config}, BuildContext(client), {})


async def health(url: str, **config: Any) -> Health:
    async with new_client() as client:
        return await make(url, client, **config).health()


async def ask(url: str, query: Any, name: str = "orders_api", **config: Any) -> str:
    async with new_client() as client:
        endpoint = make(url, client, name, **config)
        return endpoint.format(await endpoint.query(query))


@pytest.fixture
def status_page(fault_server: FaultServer) -> FaultServer:
    fault_server.answer(200, json.dumps(STATUS))
    return fault_server


# --- answers -----------------------------------------------------------------------------------


async def test_health_shows_the_configured_fields(status_page: FaultServer) -> None:
    assert await health(status_page.url, fields=["status", "latency_ms"]) == Health(True, "status ok, latency_ms 12")


async def test_ok_when_decides_health(status_page: FaultServer) -> None:
    check = {"path": "status", "equals": "OK"}
    assert (await health(status_page.url, fields=["status"], ok_when=check)).ok
    status_page.answer(200, json.dumps({**STATUS, "status": "degraded"}))
    assert await health(status_page.url, fields=["status"], ok_when=check) == Health(False, "status degraded")
    assert not (await health(status_page.url, ok_when={"path": "db.pool.waiting", "equals": 0})).ok


async def test_a_503_with_a_body_is_not_ok_with_its_figures(fault_server: FaultServer) -> None:
    fault_server.answer(503, json.dumps({"status": "draining"}))
    assert await health(fault_server.url, fields=["status"]) == Health(False, "status draining")
    fault_server.answer(503, b"<html>down</html>")
    assert await health(fault_server.url, fields=["status"]) == Health(False, "HTTP 503")


async def test_without_fields_the_plain_top_level_values_show(status_page: FaultServer) -> None:
    assert await health(status_page.url) == Health(True, "status ok, latency_ms 12, version 2.4.1")


async def test_db_stats_endpoint_answers_the_db_command(status_page: FaultServer) -> None:
    text = await ask(status_page.url, DbQuery(), name="orders_db", kind="db", fields=DB_FIELDS)
    assert text == "orders_db: active 7, idle 13, waiting 3"
    text = await ask(status_page.url, DbQuery("waiting"), name="orders_db", kind="db", fields=DB_FIELDS)
    assert text == "orders_db: waiting 3"
    text = await ask(status_page.url, DbQuery("pools"), name="orders_db", kind="db", fields=DB_FIELDS)
    assert text == "orders_db: active 7, idle 13, waiting 3"  # nothing matches "pools": all figures


async def test_gateway_kind_and_list_steps(status_page: FaultServer) -> None:
    fields = ["queues.0.name", {"path": "queues.0.depth", "label": "depth"}, "queues", "db"]
    text = await ask(status_page.url, GatewayQuery(), name="edge", kind="gateway", fields=fields)
    assert text == "edge: queues.0.name email, depth 42, queues 1 items, db 2 fields"


async def test_metrics_kind_answers_a_field_by_name(status_page: FaultServer) -> None:
    assert (
        await ask(status_page.url, MetricQuery("latency_ms"), kind="metrics", fields=["latency_ms"])
        == "orders_api latency_ms: 12"
    )
    text = await ask(status_page.url, MetricQuery("waiting", "web", range_s=3600), kind="metrics", fields=DB_FIELDS)
    assert text == "orders_api waiting: 3 (not per service (web); no history, value now)"
    with pytest.raises(BackendQueryError) as caught:
        await ask(status_page.url, MetricQuery("cpu"), kind="metrics", fields=DB_FIELDS)
    assert describe(caught.value) == "orders_api: query rejected: no cpu among its fields"
    with pytest.raises(BadBackendResponse) as bad:
        await ask(status_page.url, MetricQuery("status"), kind="metrics", fields=["status"])
    assert describe(bad.value) == "orders_api: unreadable answer (status is not a number)"


async def test_a_kind_answers_only_its_own_questions(status_page: FaultServer) -> None:
    for kind, query in (("health", DbQuery()), ("db", LogQuery()), ("metrics", GatewayQuery())):
        with pytest.raises(BackendQueryError):
            await ask(status_page.url, query, kind=kind)


def test_paths_and_values() -> None:
    assert lookup("x", STATUS, "db.pool.waiting") == 3
    assert lookup("x", STATUS, "queues.0.depth") == 42
    for missing in ("db.pool.missing", "queues.5.depth", "status.deeper", "queues.x"):
        with pytest.raises(BadBackendResponse) as caught:
            lookup("x", STATUS, missing)
        assert caught.value.detail == f"no {missing} in answer"
    assert [show(v) for v in (True, None, 1234567, 0.25, "a\nb")] == ["true", "null", "1.23M", "0.25", "a b"]


# --- config, names, headers from the environment --------------------------------------------


async def test_health_by_the_monitors_name_through_the_registry(status_page: FaultServer) -> None:
    async with new_client() as client:
        registry = build_monitors({"orders_api": {"type": "http", "url": status_page.url, "fields": ["status"]},
                                   "pool_stats": {"type": "http", "url": status_page.url, "kind": "db",
                                                  "system": "database", "fields": DB_FIELDS}},
                                  BuildContext(client))  # fmt: skip
        (orders,) = registry.for_system("orders_api")
        assert orders.display == "orders_api" and orders.kinds == frozenset()
        assert await orders.health() == Health(True, "status ok")
        (pool,) = registry.for_kind(Kind.DB)
        assert registry.for_system("database") == [pool]


async def test_headers_come_from_named_environment_variables() -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"status": "ok"})

    environ = {"ORDERS_TOKEN": "Bearer s3cr3t-value", "UNRELATED": "x"}
    async with httpx.AsyncClient(transport=httpx.MockTransport(handle)) as client:
        endpoint = build_with("orders_api", {"url": "http://orders.internal/health",
                                             "headers_env": {"Authorization": "ORDERS_TOKEN"}},
                              BuildContext(client), environ)  # fmt: skip
        assert (await endpoint.health()).ok
    assert seen[0].headers["Authorization"] == "Bearer s3cr3t-value"
    assert seen[0].url == "http://orders.internal/health"


async def test_a_missing_or_bad_header_variable_stops_start_up_naming_only_the_key() -> None:
    config = {"url": "http://x/health", "headers_env": {"Authorization": "ORDERS_TOKEN"}}
    for environ in ({}, {"ORDERS_TOKEN": "Bearer a\r\nX-Injected: 1"}):
        with pytest.raises(ValidationError) as caught:
            HttpConfig.model_validate(config, context={"environ": environ})
        assert "ORDERS_TOKEN" in str(caught.value) and "X-Injected" not in str(caught.value)
    with pytest.raises(ValidationError):
        HttpConfig.model_validate({**config, "headers_env": {"Bad Header": "ORDERS_TOKEN"}},
                                  context={"environ": {"ORDERS_TOKEN": "x"}})  # fmt: skip
    async with new_client() as client:
        with pytest.raises(MonitorConfigError) as registry_error:
            build_monitors({"orders_api": {"type": "http", "url": "http://x/",
                                           "headers_env": {"Authorization": "OPERATOR_TEST_SURELY_UNSET_VARIABLE"}}},
                           BuildContext(client))  # fmt: skip
    assert str(registry_error.value) == "monitor 'orders_api': invalid headers_env"


def test_config_is_validated() -> None:
    for bad in ({"url": "ftp://x"}, {"url": "http://x", "kind": "logs"}, {"url": "http://x", "fields": ["a..b"]},
                {"url": "http://x", "fields": [{"path": "a", "label": "x" * 100}]}, {"url": "http://x", "token": "t"},
                {"url": "http://x", "ok_when": {"path": "a b", "equals": 1}}):  # fmt: skip
        with pytest.raises(ValidationError):
            HttpConfig.model_validate(bad, context={"environ": {}})


# --- faults, on a loopback server that misbehaves --------------------------------------------


async def test_a_hung_endpoint_times_out_on_time(fault_server: FaultServer) -> None:
    fault_server.hang(HANG_S)
    started = time.monotonic()
    with pytest.raises(BackendTimeout) as caught:
        await health(fault_server.url, timeout_s=0.5)
    assert time.monotonic() - started < 1.5
    assert describe(caught.value) == "orders_api: timed out after 0.5 s"
    async with new_client() as client:
        guarded = Guarded(make(fault_server.url, client, kind="db", timeout_s=0.5))
        started = time.monotonic()
        with pytest.raises(BackendTimeout):
            await guarded.query(DbQuery())
        assert time.monotonic() - started < 1.5


@pytest.mark.parametrize(
    ("status", "error", "text"),
    [
        (500, BackendError, "orders_api: failed (HTTP 500)"),
        (502, BackendUnavailable, "orders_api: unreachable (HTTP 502)"),
        (401, BackendAuthError, "orders_api: access denied (HTTP 401), check credentials"),
        (403, BackendAuthError, "orders_api: access denied (HTTP 403), check credentials"),
        (404, BackendQueryError, "orders_api: query rejected: HTTP 404"),
    ],
)
async def test_http_errors(fault_server: FaultServer, status: int, error: type, text: str) -> None:
    fault_server.answer(status, b'{"status": "secret-internal-detail"}')
    with pytest.raises(error) as caught:
        await health(fault_server.url, fields=["status"])
    assert describe(caught.value) == text
    with pytest.raises(error):
        await ask(fault_server.url, DbQuery(), kind="db", fields=["status"])


@pytest.mark.parametrize("body", [b"<html>proxy error</html>", b"{'single': 'quotes'}", b"", b"\xff\xfe"])
async def test_malformed_json(fault_server: FaultServer, body: bytes) -> None:
    fault_server.answer(200, body)
    with pytest.raises(BadBackendResponse) as caught:
        await health(fault_server.url, fields=["status"])
    assert describe(caught.value) == "orders_api: unreadable answer (not JSON)"


async def test_a_missing_path_is_named(status_page: FaultServer) -> None:
    with pytest.raises(BadBackendResponse) as caught:
        await ask(status_page.url, DbQuery(), kind="db", fields=["db.pool.active"])
    assert describe(caught.value) == "orders_api: unreadable answer (no db.pool.active in answer)"
    status_page.answer(200, b"[1, 2]")
    with pytest.raises(BadBackendResponse) as caught:
        await health(status_page.url)
    assert describe(caught.value) == "orders_api: unreadable answer (not a JSON object)"


async def test_connection_refused() -> None:
    with pytest.raises(BackendUnavailable) as caught:
        await health(refused_url())
    assert describe(caught.value) == "orders_api: unreachable (cannot connect)"


async def test_a_huge_answer_is_refused_with_bounded_memory(fault_server: FaultServer) -> None:
    fault_server.answer(200, b"", endless=True)
    tracemalloc.start()
    try:
        with pytest.raises(BadBackendResponse) as caught:
            await health(fault_server.url, timeout_s=10)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert describe(caught.value) == "orders_api: unreadable answer (answer too large)"
    assert peak < 16 * 2**20


async def test_hostile_values_stay_one_short_safe_line(fault_server: FaultServer) -> None:
    evil = 'ok"\n\rSTOP\x07\x1b[2J' + "x" * 5000
    fault_server.answer(200, json.dumps({"status": evil, "n": 1e300, evil: evil}))
    result = await health(fault_server.url)
    assert "\n" not in result.detail and "\x07" not in result.detail and "\x1b" not in result.detail
    assert len(result.detail) <= 120
    text = await ask(fault_server.url, DbQuery(), kind="db", fields=["status", "n"])
    assert "\n" not in text and "\r" not in text and len(text) < 100
    many = {f"k{i}": evil for i in range(50)}
    fault_server.answer(200, json.dumps(many))
    text = await ask(fault_server.url, DbQuery(), kind="db", fields=list(many))
    assert len(text) <= 300 and "\n" not in text
