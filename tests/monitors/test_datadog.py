"""Datadog against its recorded API answers (replayed by a real loopback server, and by httpx's
MockTransport where the test reads the request we sent), and against a server that misbehaves."""

from __future__ import annotations

import json
import time
import tracemalloc
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from monitors.base import DbQuery, Health, Kind, LogQuery, MetricQuery
from monitors.datadog import (
    DEFAULT_QUERIES,
    Datadog,
    DatadogConfig,
    expand,
    search_body,
    search_phrase,
    search_query,
    search_value,
    tag_value,
)
from monitors.errors import (
    BackendAuthError,
    BackendError,
    BackendQueryError,
    BackendTimeout,
    BackendUnavailable,
    BadBackendResponse,
    CredentialsMissing,
    describe,
)
from monitors.formatting import human
from monitors.http import new_client
from monitors.registry import BuildContext, build_monitors
from monitors.resilience import Guarded
from tests.servers import FaultServer, refused_url

pytestmark = pytest.mark.anyio
HANG_S = 3.0
"""How long a hung server keeps a request: past every deadline tested, short enough that its late
answer to a closed socket lands while the session is still running."""
FIXTURES = Path(__file__).parent.parent / "fixtures" / "datadog"
KEYS = {"datadog_api_key": "api-key-0123456789abcdef", "datadog_app_key": "app-key-fedcba9876543210"}


def monitor(url: str, client: httpx.AsyncClient, timeout_s: float = 3.0, secrets: dict[str, str] | None = None,
            **config: Any) -> Datadog:  # fmt: skip
    return Datadog("datadog", DatadogConfig(api_url=url, timeout_s=timeout_s, **config), client,
                   KEYS if secrets is None else secrets)  # fmt: skip


async def ask(url: str, query: MetricQuery | LogQuery, timeout_s: float = 3.0, **config: Any) -> str:
    async with new_client() as client:
        datadog = monitor(url, client, timeout_s, **config)
        return datadog.format(await datadog.query(query))


def sent(server: FaultServer) -> tuple[str, dict[str, str]]:
    """The path and query parameters of the only request the server saw."""
    assert len(server.behaviour.seen) == 1
    parts = urllib.parse.urlsplit(server.behaviour.seen[0])
    return parts.path, dict(urllib.parse.parse_qsl(parts.query))


def recording(answer: bytes, status: int = 200) -> tuple[httpx.AsyncClient, list[httpx.Request]]:
    """A client whose transport answers `answer` and keeps each request it was given."""
    requests: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(status, content=answer, headers={"content-type": "application/json"})

    return httpx.AsyncClient(transport=httpx.MockTransport(handle)), requests


# --- metrics -----------------------------------------------------------------------------------


def _recorded_points() -> list[float]:
    answer = json.loads((FIXTURES / "v1_query_timeseries_response.json").read_text())
    return [value for _, value in answer["series"][0]["pointlist"] if value is not None]


async def test_now_is_the_latest_point_of_the_recorded_series(fault_server: FaultServer) -> None:
    fault_server.answer(200, (FIXTURES / "v1_query_timeseries_response.json").read_bytes())
    assert await ask(fault_server.url, MetricQuery("cpu")) == f"all services cpu: {human(_recorded_points()[-1], '%')}"
    path, params = sent(fault_server)
    assert path == "/api/v1/query"
    assert params["query"] == "avg:system.cpu.user{*}"
    assert int(params["to"]) - int(params["from"]) == 600
    assert abs(int(params["to"]) - time.time()) < 10


async def test_a_range_of_the_recorded_series(fault_server: FaultServer) -> None:
    fault_server.answer(200, (FIXTURES / "v1_query_timeseries_response.json").read_bytes())
    points = _recorded_points()
    text = await ask(fault_server.url, MetricQuery("cpu", "checkout", range_s=86400))
    figures = [human(v, "%") for v in (points[-1], min(points), max(points), sum(points) / len(points))]
    assert text == "checkout cpu 1d: now {}, min {}, max {}, avg {}, steady".format(*figures)
    _, params = sent(fault_server)
    assert params["query"] == "avg:system.cpu.user{service:checkout}"
    assert int(params["to"]) - int(params["from"]) == 86400


async def test_series_are_named_by_their_tags_and_gaps_skipped(fault_server: FaultServer) -> None:
    series = [{"tag_set": [f"service:{name}"], "scope": f"service:{name}", "pointlist": [[1, value], [2, None]]}
              for name, value in (("payment", 0.5), ("checkout", 0.25))]  # fmt: skip
    fault_server.answer(200, json.dumps({"status": "ok", "series": series}))
    assert (
        await ask(fault_server.url, MetricQuery("latency")) == "all services latency: payment 500 ms, checkout 250 ms"
    )


async def test_raw_queries_go_as_typed(fault_server: FaultServer) -> None:
    fault_server.answer(200, b'{"status": "ok", "series": []}')
    assert await ask(fault_server.url, MetricQuery("sum:kafka.lag{env:prod}", raw=True)) == "query: no data"
    assert sent(fault_server)[1]["query"] == "sum:kafka.lag{env:prod}"


async def test_aliases_from_the_section_add_to_the_defaults(fault_server: FaultServer) -> None:
    fault_server.answer(200, b'{"status": "ok", "series": []}')
    text = await ask(
        fault_server.url,
        MetricQuery("queue", "orders"),
        metrics={"queue": "max:rabbitmq.queue.messages{queue:{service}}"},
    )
    assert text == "orders queue: no data"
    assert sent(fault_server)[1]["query"] == "max:rabbitmq.queue.messages{queue:orders}"
    with pytest.raises(BackendQueryError) as caught:
        await ask(fault_server.url, MetricQuery("nope"))
    assert describe(caught.value) == "Datadog: query rejected: no query for nope"


def test_service_tags_are_normalised_so_they_cannot_escape_the_scope() -> None:
    hostile = "checkout} by {host},avg:secret{*"
    query = expand(DEFAULT_QUERIES["cpu"], hostile)
    assert query == "avg:system.cpu.user{service:checkout__by__host__avg:secret__}"
    assert query.count("{") == 1 and query.count("}") == 1
    assert tag_value("Web Frontend*") == "web_frontend_"
    assert tag_value("eu/api-2.x") == "eu/api-2.x"
    for unusable in ("", "   ", "x" * 5000):
        with pytest.raises(BackendQueryError):
            tag_value(unusable)


def test_with_no_service_the_service_filter_is_dropped() -> None:
    assert expand("avg:a{service:{service}}", None) == "avg:a{*}"
    assert expand("avg:a{service:{service},env:prod}", None) == "avg:a{env:prod}"
    assert expand("avg:a{env:prod,service:{service}}", None) == "avg:a{env:prod}"
    assert expand("avg:a{env:prod, service:{service} ,team:x}", None) == "avg:a{env:prod,team:x}"
    assert expand(DEFAULT_QUERIES["error_rate"], None) == (
        "100 * sum:trace.http.request.errors{*}.as_count() / sum:trace.http.request.hits{*}.as_count()"
    )


async def test_a_refused_query_gives_datadogs_reason(fault_server: FaultServer) -> None:
    fault_server.answer(
        400, b'{"errors": ["Error parsing query: \\nunable to parse avg:a{: Rule \'scope_expr\' didn\'t match"]}'
    )
    with pytest.raises(BackendQueryError) as caught:
        await ask(fault_server.url, MetricQuery("avg:a{", raw=True))
    assert (
        describe(caught.value)
        == "Datadog: query rejected: Error parsing query: unable to parse avg:a{: Rule 'scope_expr' didn't match"
    )
    fault_server.answer(200, b'{"status": "error", "error": "Rule \'scope_expr\' didn\'t match"}')
    with pytest.raises(BackendQueryError):
        await ask(fault_server.url, MetricQuery("avg:a{", raw=True))


# --- logs --------------------------------------------------------------------------------------


async def test_log_search_request_matches_the_recorded_api_shape() -> None:
    client, requests = recording((FIXTURES / "v2_logs_events_search_response_page1.json").read_bytes())
    async with client:
        datadog = monitor("https://api.datadoghq.com", client, log_indexes=["main"])
        await datadog.query(LogQuery(("timeout",), service="payment", level="error", range_s=900))
    (request,) = requests
    assert request.method == "POST" and request.url.path == "/api/v2/logs/events/search"
    assert request.headers["DD-API-KEY"] == KEYS["datadog_api_key"]
    assert request.headers["DD-APPLICATION-KEY"] == KEYS["datadog_app_key"]
    body = json.loads(request.content)
    assert body == {
        "filter": {"query": 'service:payment status:(emergency OR alert OR critical OR error) "timeout"',
                   "from": "now-900s", "to": "now", "indexes": ["main"]},
        "sort": "-timestamp",
        "page": {"limit": 20},
    }  # fmt: skip
    for name in ("v2_logs_events_search_request.json", "v2_logs_events_search_request_absolute_time.json"):
        recorded = json.loads((FIXTURES / name).read_text())
        assert set(body) <= set(recorded) | {"sort"} and set(body["page"]) <= set(recorded["page"]) | {"cursor"}
        assert set(body["filter"]) <= {"query", "from", "to", "indexes"} and set(recorded["filter"]) <= set(
            body["filter"]
        ) | {"query"}
        assert recorded["sort"].lstrip("-") == body["sort"].lstrip("-")


async def test_recorded_log_pages_read_newest_first(fault_server: FaultServer) -> None:
    fault_server.answer(200, (FIXTURES / "v2_logs_events_search_response_page1.json").read_bytes())
    text = await ask(fault_server.url, LogQuery())
    head, first, second = text.split("\n")
    assert head == "all services: latest lines in the last 1h, newest first:"  # a next page exists: no count
    assert first.endswith("ago sinatra: I, [2022-04-11T16:29:47.400621 #14] INFO -- : Index page hit")
    assert second.endswith('ago sinatra: 169.254.0.1 - - [11/Apr/2022:16:29:47 +0000] "GET / HTTP/1.1" 200 117 0.0027')
    assert sent(fault_server)[0] == "/api/v2/logs/events/search"


async def test_a_last_page_and_an_empty_answer_are_answers(fault_server: FaultServer) -> None:
    fault_server.answer(200, (FIXTURES / "v2_logs_events_search_response_last_page.json").read_bytes())
    assert await ask(fault_server.url, LogQuery(service="payment", level="error")) == "payment: 0 errors in the last 1h"
    fault_server.answer(200, (FIXTURES / "v2_logs_events_search_response_empty.json").read_bytes())
    assert (
        await ask(fault_server.url, LogQuery(("db",), range_s=1800))
        == 'all services "db": no matching lines in the last 30m'
    )


async def test_a_whole_answer_on_one_page_is_counted(fault_server: FaultServer) -> None:
    fault_server.answer(
        200, (FIXTURES / "v2_logs_events_search_response_page2.json").read_bytes().replace(b'"meta"', b'"x"')
    )
    text = await ask(fault_server.url, LogQuery(service="sinatra"))
    assert text.startswith("sinatra: 1 lines in the last 1h, newest first:\n")


def test_search_values_and_phrases_are_escaped() -> None:
    assert search_value("web-1 (eu)") == "web\\-1\\ \\(eu\\)"
    assert search_value("a\nb") == "a\\ b"
    assert search_phrase('say "hi" \\o/') == '"say \\"hi\\" \\\\o/"'
    assert search_phrase("OR *:*\r\n\x07") == '"OR *:*"'
    query = search_query(LogQuery(('x" OR service:*',), service="pay ment OR *", level="bogus level"))
    assert query == 'service:pay\\ ment\\ OR\\ \\* status:bogus\\ level "x\\" OR service:*"'
    assert search_query(LogQuery()) == "*"
    assert search_body(LogQuery(limit=50))["page"]["limit"] == 100


async def test_hostile_search_words_are_refused_or_kept_as_text(fault_server: FaultServer) -> None:
    fault_server.answer(200, b'{"data": []}')
    hostile = 'db"\n STOP\r\x07' + "x" * 500
    text = await ask(fault_server.url, LogQuery((hostile,), service="pay\nment", level="error"))
    assert "\r" not in text and "\x07" not in text and "\n" not in text and len(text) < 160
    with pytest.raises(BackendQueryError) as caught:
        await ask(fault_server.url, LogQuery(("y" * 5000,)))
    assert describe(caught.value) == "Datadog: query rejected: search too long"


async def test_hostile_log_lines_and_tags_stay_short_and_safe(fault_server: FaultServer) -> None:
    evil = "ERROR \x1b[31m\x07 api_key=abc123 see http://10.0.0.7/admin " + "z" * 5000
    event = {"attributes": {"timestamp": "2024-01-01T00:00:00Z", "message": evil, "service": "s\r\nvc" + "v" * 500}}
    fault_server.answer(200, json.dumps({"data": [event] * 3}))
    text = await ask(fault_server.url, LogQuery())
    assert "\x1b" not in text and "\x07" not in text and "abc123" not in text and "10.0.0.7" not in text
    assert len(text) <= 300 and len(text.split("\n")) == 2
    series = [{"tag_set": ["service:web\nSTOP\x07" + "x" * 5000], "pointlist": [[1, 3.0]]}] * 5
    fault_server.answer(200, json.dumps({"status": "ok", "series": series}))
    text = await ask(fault_server.url, MetricQuery("cpu"))
    assert "\n" not in text and "\x07" not in text and len(text) < 160


# --- keys, health, config --------------------------------------------------------------------


async def test_missing_keys_send_nothing_and_say_so(fault_server: FaultServer) -> None:
    async with new_client() as client:
        datadog = monitor(fault_server.url, client, secrets={"datadog_api_key": KEYS["datadog_api_key"]})
        with pytest.raises(CredentialsMissing) as caught:
            await datadog.query(MetricQuery("cpu"))
        assert describe(caught.value) == "Datadog: credentials not set (DATADOG_APP_KEY)"
        assert caught.value.names == ("DATADOG_APP_KEY",)
        health = await monitor(fault_server.url, client, secrets={}).health()
    assert health == Health(False, "DATADOG_API_KEY and DATADOG_APP_KEY not set")
    assert fault_server.behaviour.seen == []


async def test_health_validates_the_api_key(fault_server: FaultServer) -> None:
    async with new_client() as client:
        fault_server.answer(200, b'{"valid": true}')
        assert (await monitor(fault_server.url, client).health()).detail == "API key valid"
        assert sent(fault_server)[0] == "/api/v1/validate"
        fault_server.answer(403, b'{"errors": ["Forbidden"]}')
        with pytest.raises(BackendAuthError) as caught:
            await monitor(fault_server.url, client).health()
        assert describe(caught.value) == "Datadog: access denied (HTTP 403), check credentials"
        fault_server.answer(200, b'{"valid": false}')
        assert not (await monitor(fault_server.url, client).health()).ok


async def test_keys_never_reach_a_reply(fault_server: FaultServer) -> None:
    fault_server.answer(400, json.dumps({"errors": [f"bad key {KEYS['datadog_api_key']}"]}))
    with pytest.raises(BackendQueryError) as caught:
        await ask(fault_server.url, MetricQuery("cpu"))
    assert describe(caught.value) == "Datadog: query rejected: bad key <key>"
    fault_server.answer(
        200, json.dumps({"status": "error", "error": f"app key {KEYS['datadog_app_key']} is read-only"})
    )
    with pytest.raises(BackendQueryError) as caught:
        await ask(fault_server.url, MetricQuery("cpu"))
    assert describe(caught.value) == "Datadog: query rejected: app key <key> is read-only"


def test_site_must_be_a_plain_host_name() -> None:
    assert DatadogConfig(site="datadoghq.eu").site == "datadoghq.eu"
    for bad in ("https://datadoghq.eu", "datadoghq.eu/api", "evil.com:8080", "a b.com", "localhost", "..", ""):
        with pytest.raises(ValidationError):
            DatadogConfig(site=bad)
    with pytest.raises(ValidationError):
        DatadogConfig(api_url="file:///etc/passwd")


async def test_built_through_the_registry_with_the_sites_api() -> None:
    async with new_client() as client:
        registry = build_monitors({"datadog": {"site": "us5.datadoghq.com"}}, BuildContext(client, secrets=KEYS),
                                  guard=False)  # fmt: skip
    datadog = registry.get("datadog")
    assert isinstance(datadog, Datadog) and datadog.http.base_url == "https://api.us5.datadoghq.com"
    assert datadog.kinds == frozenset({Kind.METRICS, Kind.LOGS}) and registry.for_system("datadog") == [datadog]
    with pytest.raises(BackendQueryError):
        await datadog.query(DbQuery())


# --- faults, on a loopback server that misbehaves --------------------------------------------

QUERIES: list[Callable[[], MetricQuery | LogQuery]] = [lambda: MetricQuery("cpu"), lambda: LogQuery(("x",))]


@pytest.mark.parametrize("query", QUERIES, ids=["metrics", "logs"])
async def test_a_hung_backend_times_out_on_time(fault_server: FaultServer, query: Callable[[], Any]) -> None:
    fault_server.hang(HANG_S)
    started = time.monotonic()
    with pytest.raises(BackendTimeout) as caught:
        await ask(fault_server.url, query(), timeout_s=0.5)
    assert time.monotonic() - started < 1.5
    assert describe(caught.value) == "Datadog: timed out after 0.5 s"


async def test_the_guard_enforces_the_deadline_too(fault_server: FaultServer) -> None:
    fault_server.hang(HANG_S)
    async with new_client() as client:
        guarded = Guarded(monitor(fault_server.url, client, 0.5))
        started = time.monotonic()
        with pytest.raises(BackendTimeout):
            await guarded.health()
        assert time.monotonic() - started < 1.5


@pytest.mark.parametrize(
    ("status", "error", "text"),
    [
        (500, BackendError, "Datadog: failed (HTTP 500)"),
        (503, BackendUnavailable, "Datadog: unreachable (HTTP 503)"),
        (401, BackendAuthError, "Datadog: access denied (HTTP 401), check credentials"),
        (403, BackendAuthError, "Datadog: access denied (HTTP 403), check credentials"),
    ],
)
@pytest.mark.parametrize("query", QUERIES, ids=["metrics", "logs"])
async def test_http_errors(
    fault_server: FaultServer, query: Callable[[], Any], status: int, error: type, text: str
) -> None:
    fault_server.answer(status, b"secret-internal-detail")
    with pytest.raises(error) as caught:
        await ask(fault_server.url, query())
    assert describe(caught.value) == text


async def test_connection_refused() -> None:
    with pytest.raises(BackendUnavailable) as caught:
        await ask(refused_url(), LogQuery())
    assert describe(caught.value) == "Datadog: unreachable (cannot connect)"


@pytest.mark.parametrize(
    "body",
    [
        b"<html>proxy error</html>",
        b"[]",
        b"{}",
        b'{"status": "ok"}',
        b'{"status": "ok", "series": [{"pointlist": [[1, "abc"]]}]}',
        b'{"status": "ok", "series": [{"pointlist": [[true, 1]]}]}',
        b'{"data": [{"attributes": {"timestamp": "yesterday"}}]}',
        b'{"data": [{"attributes": "x"}]}',
        b'{"data": {}}',
    ],
)
@pytest.mark.parametrize("query", QUERIES, ids=["metrics", "logs"])
async def test_garbage_answers(fault_server: FaultServer, query: Callable[[], Any], body: bytes) -> None:
    fault_server.answer(200, body)
    with pytest.raises(BadBackendResponse):
        await ask(fault_server.url, query())


async def test_a_huge_answer_is_refused_with_bounded_memory(fault_server: FaultServer) -> None:
    fault_server.answer(200, b"", endless=True)
    tracemalloc.start()
    try:
        with pytest.raises(BadBackendResponse) as caught:
            await ask(fault_server.url, LogQuery(), timeout_s=10)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert describe(caught.value) == "Datadog: unreadable answer (answer too large)"
    assert peak < 16 * 2**20
