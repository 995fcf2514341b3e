"""Elasticsearch against its recorded wire payloads (respx replays them and checks the exact JSON
body sent), and against a loopback server that misbehaves on purpose.

No Debian package ships Elasticsearch, so there is no real server here; the fixtures in
tests/fixtures/elasticsearch are the specification's own examples (see SOURCES.md)."""

from __future__ import annotations

import json
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from monitors.base import LogQuery, LogResult
from monitors.elasticsearch import Elasticsearch, ElasticsearchConfig, field, search_body, timestamp
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
from monitors.logs_format import format_logs
from monitors.registry import BuildContext, MonitorConfigError, build_monitors
from tests.servers import FaultServer, refused_url

pytestmark = pytest.mark.anyio
FIXTURES = Path(__file__).parent.parent / "fixtures" / "elasticsearch"
ES = "http://es.test:9200"
SEARCH = f"{ES}/logs-*/_search"
ERROR_LEVELS = ["error", "ERROR", "Error", "err", "ERR", "fatal", "FATAL", "critical", "CRITICAL"]


def es(client: httpx.AsyncClient, url: str = ES, **options: object) -> Elasticsearch:
    return Elasticsearch("elasticsearch", ElasticsearchConfig(url=url, **options), client)


async def ask(url: str, query: LogQuery, timeout_s: float = 3.0) -> str:
    async with new_client() as client:
        monitor = es(client, url, timeout_s=timeout_s)
        return monitor.format(await monitor.query(query))


def hits(*sources: dict[str, Any], total: Any = None) -> bytes:
    found = [{"_index": "logs-1", "_id": str(i), "_source": source} for i, source in enumerate(sources)]
    return json.dumps({"hits": {"total": total if total is not None else {"value": len(found), "relation": "eq"},
                                "hits": found}}).encode()  # fmt: skip


def body_of(route: respx.Route) -> Any:
    return json.loads(route.calls.last.request.content)


# --- the request, built as a dict ------------------------------------------------------------


async def test_the_exact_request_body_and_the_recorded_hits(respx_mock: respx.MockRouter) -> None:
    route = respx_mock.post(SEARCH).mock(
        return_value=httpx.Response(200, content=(FIXTURES / "search_response.json").read_bytes())
    )
    async with new_client() as client:
        result = await es(client).query(
            LogQuery(terms=("timeout", "db"), service="payment", level="error", range_s=1800)
        )
    request = route.calls.last.request
    assert request.method == "POST" and request.url.raw_path == b"/logs-*/_search"
    assert request.headers["content-type"] == "application/json"
    assert body_of(route) == {
        "size": 100,
        "sort": [{"@timestamp": {"order": "desc", "unmapped_type": "date"}}],
        "track_total_hits": True,
        "_source": ["message", "@timestamp", "service.name"],
        "query": {
            "bool": {
                "filter": [
                    {"range": {"@timestamp": {"gte": "now-1800s", "lte": "now"}}},
                    {"term": {"service.name": "payment"}},
                    {"terms": {"log.level": ERROR_LEVELS}},
                ],
                "must": [{"match_phrase": {"message": "timeout"}}, {"match_phrase": {"message": "db"}}],
            }
        },
    }
    assert isinstance(result, LogResult)
    assert result.total == 20  # hits.total says 20 matched; one came back
    assert [line.message for line in result.lines] == ["GET /search HTTP/1.1 200 1070000"]
    recorded = datetime(2099, 11, 15, 14, 12, 12, tzinfo=UTC).timestamp()  # "2099-11-15T14:12:12": no zone is UTC
    assert result.lines[0].timestamp == recorded
    assert format_logs(result, now=recorded + 7200) == (
        'payment "timeout" "db": 20 errors in the last 30m, newest first:\n2h ago GET /search HTTP/1.1 200 1070000'
    )


def test_a_service_term_has_the_documented_term_shape() -> None:
    documented = json.loads((FIXTURES / "search_request.json").read_text())["query"]
    config = ElasticsearchConfig(url=ES, service_field="user.id")
    filters = search_body(config, LogQuery(service="kimchy"))["query"]["bool"]["filter"]
    assert documented in filters  # {"term": {"user.id": "kimchy"}}


async def test_hostile_words_land_as_data(respx_mock: respx.MockRouter) -> None:
    route = respx_mock.post(SEARCH).mock(return_value=httpx.Response(200, content=hits()))
    words = ('"quoted" OR *:*', "back\\slash", "new\nline", '|~ "{}"', "}}]}")
    async with new_client() as client:
        await es(client).query(LogQuery(terms=words, service='web" OR service:*'))
    sent = body_of(route)["query"]["bool"]
    assert sent["must"] == [{"match_phrase": {"message": word}} for word in words]
    assert {"term": {"service.name": 'web" OR service:*'}} in sent["filter"]
    assert "query_string" not in route.calls.last.request.content.decode()


async def test_no_terms_no_service_no_level_is_only_the_time_filter(respx_mock: respx.MockRouter) -> None:
    route = respx_mock.post(SEARCH).mock(return_value=httpx.Response(200, content=hits()))
    async with new_client() as client:
        result = await es(client, fetch_lines=10).query(LogQuery(range_s=600))
    assert body_of(route)["query"] == {
        "bool": {"filter": [{"range": {"@timestamp": {"gte": "now-600s", "lte": "now"}}}], "must": []}
    }
    assert body_of(route)["size"] == 10
    assert isinstance(result, LogResult)
    assert format_logs(result) == "all services: no matching lines in the last 10m"


async def test_fields_and_levels_are_config(respx_mock: respx.MockRouter) -> None:
    route = respx_mock.post(f"{ES}/app-logs,-app-logs-old/_search").mock(
        return_value=httpx.Response(200, content=hits())
    )
    async with new_client() as client:
        monitor = es(client, index="app-logs,-app-logs-old", message_field="msg", timestamp_field="ts",
                     service_field="kubernetes.labels.app", level_field="severity", levels={"error": ["E"]})  # fmt: skip
        result = await monitor.query(LogQuery(terms=("x",), service="web", level="error"))
        with pytest.raises(BackendQueryError) as caught:
            await monitor.query(LogQuery(level="warn"))
    sent = body_of(route)
    assert sent["query"]["bool"]["filter"][1:] == [
        {"term": {"kubernetes.labels.app": "web"}},
        {"terms": {"severity": ["E"]}},
    ]
    assert sent["sort"] == [{"ts": {"order": "desc", "unmapped_type": "date"}}]
    assert isinstance(result, LogResult) and format_logs(result) == 'web "x": 0 errors in the last 1h'
    assert describe(caught.value) == "Elasticsearch: query rejected: no values for level warn"


async def test_lines_are_read_flat_or_nested_newest_first_once_each(respx_mock: respx.MockRouter) -> None:
    body = hits(
        {"@timestamp": "2024-05-01T10:00:00Z", "message": "disk full", "service": {"name": "db"}},
        {"@timestamp": "2024-05-01T10:05:00.123+00:00", "message": "timeout", "service.name": "web"},
        {"@timestamp": 1714557600000, "message": ["timeout"], "service.name": ["web"]},
        {"message": "no time at all"},
        total={"value": 10000, "relation": "gte"},
    )
    respx_mock.post(SEARCH).mock(return_value=httpx.Response(200, content=body))
    async with new_client() as client:
        result = await es(client).query(LogQuery())
    assert isinstance(result, LogResult)
    assert [(line.source, line.message) for line in result.lines] == [
        ("web", "timeout (x2)"),
        ("db", "disk full"),
        ("", "no time at all"),
    ]
    assert result.total is None  # "at least 10000" is not a count
    now = 1714557900.123 + 60
    assert format_logs(result, now=now).split("\n")[:3] == [
        "all services: latest lines in the last 1h, newest first:",
        "1m ago web: timeout (x2)",
        "6m ago db: disk full",
    ]


def test_field_and_timestamp_readers() -> None:
    assert field({"log": {"level": ["warn", "x"]}}, "log.level") == "warn"
    assert field({"log.level": "info"}, "log.level") == "info"
    assert field({"log": "flat"}, "log.level") is None
    assert timestamp("2024-05-01T10:00:00Z") == 1714557600.0
    assert timestamp("1714557600000") == 1714557600.0
    assert timestamp("yesterday") is None and timestamp(True) is None and timestamp(None) is None


async def test_the_sort_value_is_the_time_when_the_source_has_none(respx_mock: respx.MockRouter) -> None:
    answer = {"hits": {"total": 1, "hits": [{"_source": {"message": "m"}, "sort": [1714557600000]}]}}
    respx_mock.post(SEARCH).mock(return_value=httpx.Response(200, json=answer))
    async with new_client() as client:
        result = await es(client).query(LogQuery())
    assert isinstance(result, LogResult) and result.lines[0].timestamp == 1714557600.0 and result.total == 1


async def test_an_api_key_secret_is_sent_when_set(respx_mock: respx.MockRouter) -> None:
    route = respx_mock.get(f"{ES}/_cluster/health").mock(
        return_value=httpx.Response(200, content=(FIXTURES / "cluster_health_response.json").read_bytes())
    )
    async with new_client() as client:
        context = BuildContext(client=client, secrets={"elasticsearch_api_key": "a2V5"})
        monitor = build_monitors({"elasticsearch": {"url": ES}}, context, guard=False).get("elasticsearch")
        assert monitor is not None
        await monitor.health()
    assert route.calls.last.request.headers["Authorization"] == "ApiKey a2V5"


@pytest.mark.parametrize(
    "index", ["logs-*", "logs-app,logs-web", "logs-*,-logs-old", ".ds-logs-*", "remote:logs-*", "filebeat-8.13.0"]
)
def test_safe_index_patterns(index: str) -> None:
    assert ElasticsearchConfig(url=ES, index=index).index == index


@pytest.mark.parametrize(
    "index",
    [
        "../_cluster",
        "logs/x",
        "Logs",
        "logs x",
        "_all",
        "logs?pretty",
        "",
        "..",
        "logs#1",
        "a" * 300,
        "logs,",
        "logs-*/_delete_by_query",
    ],
)
def test_unsafe_index_names_are_refused_at_start_up(index: str) -> None:
    with pytest.raises(MonitorConfigError) as caught:
        build_monitors(
            {"es": {"type": "elasticsearch", "url": ES, "index": index}}, BuildContext(client=new_client()), guard=False
        )
    assert str(caught.value) == "monitor 'es': invalid index"


def test_field_names_are_checked() -> None:
    with pytest.raises(MonitorConfigError) as caught:
        build_monitors(
            {"elasticsearch": {"url": ES, "message_field": 'msg"}'}}, BuildContext(client=new_client()), guard=False
        )
    assert str(caught.value) == "monitor 'elasticsearch': invalid message_field"


# --- health ------------------------------------------------------------------------------------


async def test_health_from_the_recorded_cluster_health(fault_server: FaultServer) -> None:
    recorded = json.loads((FIXTURES / "cluster_health_response.json").read_text())
    async with new_client() as client:
        fault_server.answer(200, json.dumps(recorded))
        health = await es(client, fault_server.url).health()
        assert health.ok and health.detail == "yellow, 1 node, 1 unassigned shard"
        fault_server.answer(
            200, json.dumps({**recorded, "status": "green", "number_of_nodes": 3, "unassigned_shards": 0})
        )
        assert await es(client, fault_server.url).health() == type(health)(True, "green, 3 nodes")
        fault_server.answer(200, json.dumps({**recorded, "status": "red", "unassigned_shards": 4}))
        health = await es(client, fault_server.url).health()
    assert not health.ok and health.detail == "red, 1 node, 4 unassigned shards"
    assert fault_server.behaviour.seen == ["/_cluster/health"]


@pytest.mark.parametrize(
    "body", [b'{"status": "purple", "number_of_nodes": 1}', b'{"status": "green"}', b"[]", b"nope"]
)
async def test_unreadable_health(fault_server: FaultServer, body: bytes) -> None:
    fault_server.answer(200, body)
    async with new_client() as client:
        with pytest.raises(BadBackendResponse):
            await es(client, fault_server.url).health()


# --- faults, on a loopback server --------------------------------------------------------------


async def test_the_backends_own_reason_for_a_refused_search(fault_server: FaultServer) -> None:
    error = {"error": {"root_cause": [{"type": "index_not_found_exception", "reason": "no such index [logs-*x]",
                                       "index": "logs-*x"}], "type": "index_not_found_exception",
                       "reason": "no such index [logs-*x]"}, "status": 404}  # fmt: skip
    fault_server.answer(404, json.dumps(error))
    with pytest.raises(BackendQueryError) as caught:
        await ask(fault_server.url, LogQuery())
    assert describe(caught.value) == "Elasticsearch: query rejected: no such index [logs-*x]"
    fault_server.answer(
        400, json.dumps({"error": {"type": "x", "reason": "failed at http://10.0.0.3:9200\n\x07" + "z" * 900}})
    )
    with pytest.raises(BackendQueryError) as caught:
        await ask(fault_server.url, LogQuery())
    text = describe(caught.value)
    assert text.startswith("Elasticsearch: query rejected: failed at <host>") and "\x07" not in text and len(text) < 130


async def test_a_hung_backend_times_out_on_time(fault_server: FaultServer) -> None:
    fault_server.hang()
    started = time.monotonic()
    with pytest.raises(BackendTimeout) as caught:
        await ask(fault_server.url, LogQuery(), timeout_s=0.5)
    assert time.monotonic() - started < 1.5
    assert describe(caught.value) == "Elasticsearch: timed out after 0.5 s"


@pytest.mark.parametrize(
    ("status", "error", "text"),
    [
        (500, BackendError, "Elasticsearch: failed (HTTP 500)"),
        (503, BackendUnavailable, "Elasticsearch: unreachable (HTTP 503)"),
        (401, BackendAuthError, "Elasticsearch: access denied (HTTP 401), check credentials"),
        (403, BackendAuthError, "Elasticsearch: access denied (HTTP 403), check credentials"),
    ],
)
async def test_http_errors(fault_server: FaultServer, status: int, error: type[BackendError], text: str) -> None:
    fault_server.answer(status, b'{"error": {"reason": "secret-internal-detail"}}')
    with pytest.raises(error) as caught:
        await ask(fault_server.url, LogQuery())
    assert describe(caught.value) == text


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"<html>proxy error</html>", id="not-json"),
        pytest.param(b"[]", id="a-list"),
        pytest.param(b"{}", id="no-hits"),
        pytest.param(b'{"hits": {"total": 1}}', id="no-hit-list"),
        pytest.param(b'{"hits": {"hits": {"a": 1}}}', id="hits-not-a-list"),
        pytest.param(b'{"hits": {"hits": [{"_id": "1"}]}}', id="no-source"),
        pytest.param(b'{"hits": {"hits": [{"_source": "text"}]}}', id="source-not-an-object"),
    ],
)
async def test_garbage_answers(fault_server: FaultServer, body: bytes) -> None:
    fault_server.answer(200, body)
    with pytest.raises(BadBackendResponse) as caught:
        await ask(fault_server.url, LogQuery())
    assert describe(caught.value).startswith("Elasticsearch: unreadable answer")


async def test_connection_refused() -> None:
    with pytest.raises(BackendUnavailable) as caught:
        await ask(refused_url(), LogQuery())
    assert describe(caught.value) == "Elasticsearch: unreachable (cannot connect)"


async def test_a_huge_answer_is_refused_with_bounded_memory(fault_server: FaultServer) -> None:
    fault_server.answer(200, b"", endless=True)
    tracemalloc.start()
    try:
        with pytest.raises(BadBackendResponse) as caught:
            await ask(fault_server.url, LogQuery(), timeout_s=10)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert describe(caught.value) == "Elasticsearch: unreadable answer (answer too large)"
    assert peak < 16 * 2**20


async def test_hostile_log_lines_stay_short_safe_lines(fault_server: FaultServer) -> None:
    now = int(time.time() * 1000)  # epoch millis, as Elasticsearch reads a number
    fault_server.answer(200, hits(
        {"@timestamp": now, "message": "\x1b[1mpanic\x1b[0m\x00 at\r\nmain.go\t" + "y" * 5000, "service.name": "api\x07"},
        {"@timestamp": now - 1000, "message": "fetch https://user:pw@internal.corp/x?sig=abc failed", "service.name": "api"},
        {"@timestamp": now - 2000, "message": {"nested": "object \u00e9"}},
    ))  # fmt: skip
    text = await ask(fault_server.url, LogQuery(service="api"))
    rows = text.split("\n")
    assert len(text) <= 300 and rows[0] == "api: 3 lines in the last 1h, newest first:"
    assert all(ch.isprintable() and ch.isascii() for row in rows for ch in row)
    assert all(len(row) <= 8 + 120 for row in rows)
    assert " panic at main.go yyy" in rows[1] and rows[1].endswith("...")
    assert rows[2].endswith(" fetch <url> failed") and "internal.corp" not in text and "abc" not in text
    assert rows[3].endswith(" {'nested': 'object ?'}")
