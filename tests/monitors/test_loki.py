"""Loki against its recorded wire payloads (respx replays them and checks the exact LogQL sent),
against a loopback server that misbehaves on purpose, and the shared log-line formatting.

No Debian package ships Loki, so there is no real server here; the fixtures in tests/fixtures/loki
are Loki's own test and documentation payloads (see SOURCES.md)."""

from __future__ import annotations

import json
import re
import time
import tracemalloc
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import respx

from monitors.base import LogLine, LogQuery, LogResult
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
from monitors.logs_format import format_logs, redact, tidy
from monitors.loki import Loki, LokiConfig, logql_string
from monitors.registry import BuildContext, MonitorConfigError, build_monitors
from tests.servers import FaultServer, refused_url

pytestmark = pytest.mark.anyio
FIXTURES = Path(__file__).parent.parent / "fixtures" / "loki"
LOKI = "http://loki.test:3100"
QUERY_RANGE = f"{LOKI}/loki/api/v1/query_range"


def loki(client: httpx.AsyncClient, url: str = LOKI, **options: object) -> Loki:
    return Loki("loki", LokiConfig(url=url, **options), client)


async def ask(url: str, query: LogQuery, timeout_s: float = 3.0) -> str:
    async with new_client() as client:
        monitor = loki(client, url, timeout_s=timeout_s)
        return monitor.format(await monitor.query(query))


def streams(*entries: tuple[dict[str, str], list[list[str]]]) -> bytes:
    result = [{"stream": labels, "values": values} for labels, values in entries]
    return json.dumps({"status": "success", "data": {"resultType": "streams", "result": result}}).encode()


def sent(route: respx.Route) -> dict[str, str]:
    query = parse_qs(urlsplit(str(route.calls.last.request.url)).query, keep_blank_values=True)
    return {key: values[0] for key, values in query.items()}


# --- LogQL built as data ---------------------------------------------------------------------


def test_logql_selector_terms_and_level() -> None:
    monitor = loki(new_client())
    query = LogQuery(terms=("timeout", "db"), service="payment", level="error")
    assert monitor.logql(query) == (
        r'{service="payment"} |= "timeout" |= "db" |~ `(?i)\b(error|fatal|panic|critical|exception)\b`'
    )
    assert monitor.logql(LogQuery()) == '{job=~".+"}'
    assert monitor.logql(LogQuery(level="warn")) == r'{job=~".+"} |~ `(?i)\b(warn|warning)\b`'


def test_the_service_label_base_selector_and_levels_are_config() -> None:
    monitor = loki(new_client(), service_label="app", base_selector='{namespace="prod"}',
                   levels={"error": '| detected_level="error"'})  # fmt: skip
    assert monitor.logql(LogQuery(service="web", level="error")) == '{app="web"} | detected_level="error"'
    assert monitor.logql(LogQuery(terms=("x",))) == '{namespace="prod"} |= "x"'


def test_hostile_terms_and_services_are_escaped_as_logql_strings() -> None:
    monitor = loki(new_client())
    terms = ('say "hi"', "C:\\temp", "two\nlines", '|~ ".*"', '{job="x"}', "tab\there\x07")
    expected = (
        r'{service="pay\"} or {a=\"b"} |= "say \"hi\"" |= "C:\\temp" |= "two\nlines" |= "|~ \".*\""'
        r' |= "{job=\"x\"}" |= "tab\there\u0007"'
    )
    assert monitor.logql(LogQuery(terms=terms, service='pay"} or {a="b')) == expected


def test_logql_strings_read_back_as_the_same_text() -> None:
    # A LogQL string is a Go string literal; Go's escapes include every one JSON writes.
    for value in ('a"b', "a\\b", "line\nbreak", "caf\u00e9", "\x00\x1f", "`raw`"):
        assert json.loads(logql_string(value)) == value
    assert logql_string("lone \ud800 surrogate") == '"lone ? surrogate"'


async def test_unknown_levels_are_refused_not_pasted() -> None:
    async with new_client() as client:
        with pytest.raises(BackendQueryError) as caught:
            await loki(client).query(LogQuery(level='error"} |~ ".*'))
    assert describe(caught.value).startswith("Loki: query rejected: no filter for level")


# --- the recorded payloads, replayed ----------------------------------------------------------


async def test_the_exact_request_and_the_recorded_streams(respx_mock: respx.MockRouter) -> None:
    route = respx_mock.get(QUERY_RANGE).mock(
        return_value=httpx.Response(200, content=(FIXTURES / "query_range_streams.json").read_bytes())
    )
    before = time.time_ns()
    async with new_client() as client:
        result = await loki(client).query(LogQuery(terms=("timeout",), service="payment", level="error", range_s=1800))
    params = sent(route)
    assert set(params) == {"query", "start", "end", "limit", "direction"}
    assert params["query"] == r'{service="payment"} |= "timeout" |~ `(?i)\b(error|fatal|panic|critical|exception)\b`'
    assert params["direction"] == "backward" and params["limit"] == "100"
    assert int(params["end"]) - int(params["start"]) == 1800 * 10**9
    assert before <= int(params["end"]) <= time.time_ns()
    assert isinstance(result, LogResult)
    assert [line.message for line in result.lines] == ["super line with labels", "super line"]
    assert result.total == 2
    now = 123456.789012346 + 120
    assert format_logs(result, now=now) == (
        'payment "timeout": 2 errors in the last 30m, newest first:\n2m ago super line with labels\n2m ago super line'
    )


async def test_the_documented_example_names_its_stream(respx_mock: respx.MockRouter) -> None:
    respx_mock.get(QUERY_RANGE).mock(
        return_value=httpx.Response(200, content=(FIXTURES / "query_range_streams_docs_example.json").read_bytes())
    )
    async with new_client() as client:
        result = await loki(client).query(LogQuery())
    assert isinstance(result, LogResult)
    assert [(line.message, line.source) for line in result.lines] == [("foo", "varlogs"), ("bar", "varlogs")]
    assert [line.timestamp for line in result.lines] == pytest.approx([1569266497.240578, 1569266492.548155])
    assert format_logs(result, now=1569266497.25 + 300) == (
        "all services: 2 lines in the last 1h, newest first:\n5m ago varlogs: foo\n5m ago varlogs: bar"
    )


async def test_streams_are_merged_newest_first_and_a_full_page_has_no_total(respx_mock: respx.MockRouter) -> None:
    body = streams(
        ({"service": "a"}, [["3000000000", "a3"], ["1000000000", "a1"]]),
        ({"service": "b"}, [["4000000000", "b4"], ["2000000000", "b2"]]),
    )
    respx_mock.get(QUERY_RANGE).mock(return_value=httpx.Response(200, content=body))
    async with new_client() as client:
        result = await loki(client, fetch_lines=4).query(LogQuery(limit=3))
    assert isinstance(result, LogResult)
    assert [(line.source, line.message) for line in result.lines] == [("b", "b4"), ("a", "a3"), ("b", "b2")]
    assert result.total is None  # four lines asked for, four came: there may be more


async def test_the_recorded_parse_error_is_the_reason(respx_mock: respx.MockRouter) -> None:
    respx_mock.get(QUERY_RANGE).mock(
        return_value=httpx.Response(
            400,
            content=(FIXTURES / "error_parse_400.txt").read_bytes(),
            headers={"content-type": "text/plain; charset=utf-8"},
        )  # fmt: skip
    )
    with pytest.raises(BackendQueryError) as caught:
        await ask(LOKI, LogQuery(terms=("x",)))
    assert (
        describe(caught.value)
        == "Loki: query rejected: parse error at line 1, col 1: syntax error: unexpected IDENTIFIER"
    )


async def test_a_tenant_is_sent_as_the_org_header(respx_mock: respx.MockRouter) -> None:
    route = respx_mock.get(f"{LOKI}/ready").mock(return_value=httpx.Response(200, text="ready\n"))
    async with new_client() as client:
        assert await loki(client, tenant="team-a").health() == (await loki(client).health())
    assert route.calls[0].request.headers["X-Scope-OrgID"] == "team-a"
    assert "X-Scope-OrgID" not in route.calls[1].request.headers


def test_config_is_checked_at_start_up() -> None:
    context = BuildContext(client=new_client())
    registry = build_monitors({"loki": {"url": LOKI, "service_label": "app"}}, context, guard=False)
    monitor = registry.get("loki")
    assert isinstance(monitor, Loki) and monitor.system == "logs"
    for bad in ({"service_label": "a-b"}, {"base_selector": "job=x"}, {"levels": {"error": "error"}}):
        with pytest.raises(MonitorConfigError) as caught:
            build_monitors({"loki": {"url": LOKI, **bad}}, context, guard=False)
        assert str(caught.value).startswith("monitor 'loki': invalid ")


# --- health and faults, on a loopback server ---------------------------------------------------


async def test_health_ready_and_not_ready(fault_server: FaultServer) -> None:
    async with new_client() as client:
        fault_server.answer(200, "ready\n", content_type="text/plain")
        assert (await loki(client, fault_server.url).health()).ok
        fault_server.answer(503, "Ingester not ready: waiting for 15s after being ready", content_type="text/plain")
        health = await loki(client, fault_server.url).health()
    assert not health.ok and health.detail == "not ready"
    assert fault_server.behaviour.seen == ["/ready"]


async def test_a_hung_backend_times_out_on_time(fault_server: FaultServer) -> None:
    fault_server.hang()
    started = time.monotonic()
    with pytest.raises(BackendTimeout) as caught:
        await ask(fault_server.url, LogQuery(), timeout_s=0.5)
    assert time.monotonic() - started < 1.5
    assert describe(caught.value) == "Loki: timed out after 0.5 s"


@pytest.mark.parametrize(
    ("status", "error", "text"),
    [
        (500, BackendError, "Loki: failed (HTTP 500)"),
        (503, BackendUnavailable, "Loki: unreachable (HTTP 503)"),
        (401, BackendAuthError, "Loki: access denied (HTTP 401), check credentials"),
        (403, BackendAuthError, "Loki: access denied (HTTP 403), check credentials"),
    ],
)
async def test_http_errors(fault_server: FaultServer, status: int, error: type[BackendError], text: str) -> None:
    fault_server.answer(status, b"secret-internal-detail at http://10.0.0.9:3100")
    with pytest.raises(error) as caught:
        await ask(fault_server.url, LogQuery())
    assert describe(caught.value) == text


async def test_a_hostile_error_body_is_scrubbed(fault_server: FaultServer) -> None:
    fault_server.answer(
        400, "bad query near http://10.0.0.9:3100/x?key=s3cret\n\x07" + "y" * 5000, content_type="text/plain"
    )
    with pytest.raises(BackendQueryError) as caught:
        await ask(fault_server.url, LogQuery())
    text = describe(caught.value)
    assert text.startswith("Loki: query rejected: bad query near <host>")
    assert "s3cret" not in text and "10.0.0.9" not in text and "\x07" not in text and len(text) < 120


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"<html>proxy error</html>", id="not-json"),
        pytest.param(b"[]", id="a-list"),
        pytest.param(b'{"status": "error", "error": "x"}', id="not-success"),
        pytest.param(b'{"status": "success"}', id="no-data"),
        pytest.param(b'{"status": "success", "data": {"resultType": "matrix", "result": []}}', id="a-matrix"),
        pytest.param(
            b'{"status": "success", "data": {"resultType": "streams", "result": [{"values": []}]}}', id="no-labels"
        ),
        pytest.param(streams(({}, [["soon", "x"]])), id="bad-timestamp"),
        pytest.param(streams(({}, [["1"]])), id="no-line"),
        pytest.param(
            b'{"status": "success", "data": {"resultType": "streams", "result": [{"stream": {}, "values": [[1, {"a": 1}]]}]}}',
            id="wrong-types",
        ),
    ],
)
async def test_garbage_answers(fault_server: FaultServer, body: bytes) -> None:
    fault_server.answer(200, body)
    with pytest.raises(BadBackendResponse) as caught:
        await ask(fault_server.url, LogQuery())
    assert describe(caught.value).startswith("Loki: unreadable answer")


async def test_connection_refused() -> None:
    with pytest.raises(BackendUnavailable) as caught:
        await ask(refused_url(), LogQuery())
    assert describe(caught.value) == "Loki: unreachable (cannot connect)"


async def test_a_huge_answer_is_refused_with_bounded_memory(fault_server: FaultServer) -> None:
    fault_server.answer(200, b"", endless=True)
    tracemalloc.start()
    try:
        with pytest.raises(BadBackendResponse) as caught:
            await ask(fault_server.url, LogQuery(), timeout_s=10)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert describe(caught.value) == "Loki: unreadable answer (answer too large)"
    assert peak < 16 * 2**20


async def test_hostile_log_lines_stay_short_safe_lines(fault_server: FaultServer) -> None:
    now_ns = time.time_ns()
    lines = [
        "\x1b[31mERROR\x1b[0m\x07 disk\r\nfull\ttoday " + "x" * 5000,
        "call to https://admin:pw@10.0.0.9:8443/internal?token=abc failed",
        "login failed password=hunter2 for bob \u2603",
    ]
    values = [[str(now_ns - i * 10**9), line] for i, line in enumerate(lines)]
    fault_server.answer(200, streams(({"service": "web\n\x07" + "w" * 300}, values)))
    text = await ask(fault_server.url, LogQuery(level="error"))
    assert len(text) <= 300
    assert all(ch.isprintable() and ch.isascii() for row in text.split("\n") for ch in row)
    rows = text.split("\n")
    assert rows[0] == "all services: 3 errors in the last 1h, newest first:"
    assert re.match(r"\d+s ago web www+\.\.\.: ERROR disk full today xxx", rows[1])
    assert all(len(row) <= len("59s ago ") + 24 + 2 + 120 for row in rows)
    assert "10.0.0.9" not in text and "abc" not in text and "hunter2" not in text
    assert rows[2].endswith("call to <url> failed")
    assert rows[3] == "(+1 more)"  # the third line did not fit in one reply
    text = await ask(fault_server.url, LogQuery(service="web", level="error"))
    assert re.fullmatch(r"\d+s ago login failed password=<redacted> for bob \?", text.split("\n")[3])


# --- formatting: newest first, once each, trimmed; nothing found is not an error -------------------


def test_newest_first_repeats_folded_and_trimmed() -> None:
    lines = [
        LogLine(100.0, "timeout talking to db"),
        LogLine(300.0, "timeout talking to db"),
        LogLine(200.0, "disk full"),
        LogLine(250.0, "timeout  talking to\tdb\x07"),  # the same as a phone shows it
        LogLine(50.0, "z" * 5000),
    ]
    tidied = tidy(lines, keep=5)
    assert [line.message for line in tidied] == ["timeout talking to db (x3)", "disk full", "z" * 117 + "..."]
    assert [line.timestamp for line in tidied] == [300.0, 200.0, 50.0]
    assert len(tidy(lines, keep=1)) == 1


def test_nothing_found_zero_errors_and_lines_are_different_answers() -> None:
    searched = LogQuery(terms=("timeout",), service="payment")
    assert format_logs(LogResult(searched)) == 'payment "timeout": no matching lines in the last 1h'
    errors = LogQuery(service="payment", level="error", range_s=1800)
    assert format_logs(LogResult(errors, total=0)) == "payment: 0 errors in the last 30m"
    assert format_logs(LogResult(LogQuery(level="warn", range_s=86400))) == "all services: 0 warnings in the last 1d"
    found = LogResult(errors, (LogLine(1000.0, "boom"),), total=7)
    assert format_logs(found, now=1090.0) == "payment: 7 errors in the last 30m, newest first:\n1m ago boom"
    unknown_total = LogResult(errors, (LogLine(1000.0, "boom"),))
    assert format_logs(unknown_total, now=1090.0).startswith("payment: latest errors in the last 30m")


def test_a_long_reply_shows_what_fits_and_counts_the_rest() -> None:
    lines = tuple(LogLine(1000.0 - i, f"line {i} " + "m" * 100) for i in range(5))
    text = format_logs(LogResult(LogQuery(service="web"), lines, total=5), now=1000.0)
    assert len(text) <= 300
    assert text.split("\n")[-1] == "(+3 more)"
    assert text.split("\n")[1].startswith("0s ago line 0 ")


def test_redaction() -> None:
    assert redact("Authorization: Bearer abc.def") == "Authorization: <redacted>"
    assert redact('{"token":"xyz","n":1}') == '{"token":"<redacted>","n":1}'
    assert redact("token expired for user bob") == "token expired for user bob"
    assert redact("GET http://internal:8080/x done") == "GET <url> done"
