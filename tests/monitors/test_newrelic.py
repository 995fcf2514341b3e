"""New Relic through NerdGraph: respx replays New Relic's documented and tested answers and checks the
exact GraphQL and NRQL sent, and a loopback server misbehaves on purpose for the faults.

No one can run New Relic here, so the payloads are New Relic's own (the NerdGraph tutorial, the Log
API docs, newrelic-client-go's tests) or built from them; tests/fixtures/SOURCES.md says which."""

from __future__ import annotations

import json
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from pydantic import ValidationError

from bot.settings import ConfigError, load_settings
from intents.catalog import Catalog
from monitors.base import DbQuery, Health, Kind, LogQuery, MetricQuery, MetricResult
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
from monitors.newrelic import HEALTH_NRQL, NRQL_DOCUMENT, NewRelic, NewRelicConfig
from monitors.nrql import DEFAULT_TEMPLATES, ago, check_template, code_only, expand, literal, log_nrql
from monitors.registry import PRIORITY, BuildContext, MonitorConfigError, build_monitors
from monitors.resilience import Guarded
from tests.servers import FaultServer, refused_url

pytestmark = pytest.mark.anyio
FIXTURES = Path(__file__).parent.parent / "fixtures" / "newrelic"
KEY = "NRAK-0123456789ABCDEFGHIJKLMNOPQ"
SECRETS = {"new_relic_api_key": KEY}
ACCOUNT = 1234567
NERDGRAPH = "https://api.newrelic.com/graphql"
HANG_S = 3.0


def monitor(client: httpx.AsyncClient, url: str | None = None, secrets: dict[str, str] | None = None,
            **config: Any) -> NewRelic:  # fmt: skip
    settings = NewRelicConfig(account_id=ACCOUNT, api_url=url, **config)
    return NewRelic("newrelic", settings, client, SECRETS if secrets is None else secrets)


async def ask(query: MetricQuery | LogQuery, url: str | None = None, **config: Any) -> str:
    async with new_client() as client:
        newrelic = monitor(client, url, **config)
        return newrelic.format(await newrelic.query(query))


def fixture(name: str, status: int = 200) -> httpx.Response:
    return httpx.Response(status, content=(FIXTURES / name).read_bytes(), headers={"content-type": "application/json"})


def answer(rows: list[dict[str, Any]], facets: list[str] | None = None) -> httpx.Response:
    """A NerdGraph answer in the tutorial's envelope, with the rows (and facets) a test needs."""
    nrql: dict[str, Any] = {"results": rows}
    if facets is not None:
        nrql["metadata"] = {"facets": facets}
    return httpx.Response(200, json={"data": {"actor": {"account": {"nrql": nrql}}}})


def sent(route: respx.Route) -> dict[str, Any]:
    """The variables of the last GraphQL request, after checking its document is the fixed one."""
    body = json.loads(route.calls.last.request.content)
    assert set(body) == {"query", "variables"} and body["query"] == NRQL_DOCUMENT
    variables: dict[str, Any] = body["variables"]
    assert variables["accountId"] == ACCOUNT and variables["timeout"] == 5
    return variables


# --- metrics -----------------------------------------------------------------------------------


async def test_the_request_nerdgraph_receives(respx_mock: respx.MockRouter) -> None:
    route = respx_mock.post(NERDGRAPH).mock(return_value=fixture("nerdgraph_nrql_single.json"))
    text = await ask(MetricQuery("latency", "checkout"))
    assert text == f"checkout latency: {human(1000, 's')}"
    request = route.calls.last.request
    assert request.method == "POST" and request.headers["API-Key"] == KEY
    assert request.headers["content-type"] == "application/json"
    assert (
        sent(route)["nrql"]
        == "SELECT average(duration) FROM Transaction WHERE appName = 'checkout' SINCE 5 minutes ago"
    )
    assert "checkout" not in NRQL_DOCUMENT and "$nrql: Nrql!" in NRQL_DOCUMENT and "$accountId: Int!" in NRQL_DOCUMENT


async def test_a_range_over_every_service_reads_the_recorded_timeseries(respx_mock: respx.MockRouter) -> None:
    route = respx_mock.post(NERDGRAPH).mock(return_value=fixture("nerdgraph_nrql_timeseries.json"))
    async with new_client() as client:
        newrelic = monitor(client)
        result = await newrelic.query(MetricQuery("requests", range_s=86400))
    assert sent(route)["nrql"] == (
        "SELECT rate(count(*), 1 second) FROM Transaction WHERE appName IS NOT NULL FACET appName"
        " SINCE 1 day ago TIMESERIES AUTO"
    )
    assert isinstance(result, MetricResult) and result.unit == "/s"
    assert [(dict(s.labels), s.points) for s in result.series] == [
        ({"service": "App1"}, ((1748910826.0, 100.0),)),
        ({"service": "App2"}, ((1748910826.0, 50.0),)),
    ]
    assert newrelic.format(result) == (
        "all services requests 1d: App1 now 100/s, min 100/s, max 100/s, avg 100/s, steady;"
        " App2 now 50/s, min 50/s, max 50/s, avg 50/s, steady"
    )


async def test_a_raw_query_goes_as_typed_and_gets_only_what_it_lacks(respx_mock: respx.MockRouter) -> None:
    recorded = json.loads((FIXTURES / "nerdgraph_nrql_timeseries.json").read_text())
    raw = recorded["data"]["actor"]["account"]["nrql"]["nrql"]
    route = respx_mock.post(NERDGRAPH).mock(return_value=fixture("nerdgraph_nrql_timeseries.json"))
    text = await ask(MetricQuery(raw, range_s=86400, raw=True))
    assert sent(route)["nrql"] == raw  # it has its own SINCE and TIMESERIES
    assert text.startswith("query 1d: appName=App1 now 100, min 100") and "appName=App2 now 50" in text
    route.mock(return_value=fixture("nerdgraph_nrql_single.json"))
    assert await ask(MetricQuery("SELECT count(*) FROM Transaction WHERE name LIKE '%since%'", raw=True)) == (
        "query: 1k"
    )
    assert sent(route)["nrql"] == "SELECT count(*) FROM Transaction WHERE name LIKE '%since%' SINCE 5 minutes ago"


async def test_every_service_now_names_each_one(respx_mock: respx.MockRouter) -> None:
    rows = [{"appName": name, "average.duration": value, "facet": name} for name, value in
            (("payment", 0.5), ("checkout", 0.25))]  # fmt: skip
    route = respx_mock.post(NERDGRAPH).mock(return_value=answer(rows, ["appName"]))
    assert await ask(MetricQuery("latency")) == "all services latency: payment 500 ms, checkout 250 ms"
    assert sent(route)["nrql"].endswith("WHERE appName IS NOT NULL FACET appName SINCE 5 minutes ago")


async def test_section_aliases_percentiles_and_empty_windows(respx_mock: respx.MockRouter) -> None:
    aliases = {"p99": "SELECT percentile(duration, 99) FROM Transaction WHERE appName = '{service}'"}
    route = respx_mock.post(NERDGRAPH).mock(return_value=answer([{"percentile.duration": {"99": 0.41}}]))
    assert await ask(MetricQuery("p99", "checkout", raw=True), metrics=aliases) == "checkout p99: 0.41"
    assert sent(route)["nrql"].startswith("SELECT percentile(duration, 99) FROM Transaction WHERE appName = 'checkout'")
    route.mock(return_value=answer([{"average.duration": None}]))
    assert await ask(MetricQuery("latency", "checkout")) == "checkout latency: no data"
    route.mock(return_value=answer([{"beginTimeSeconds": 1, "endTimeSeconds": 2, "average.duration": None}]))
    assert await ask(MetricQuery("latency", "checkout", range_s=3600)) == "checkout latency 1h: no data"
    with pytest.raises(BackendQueryError) as caught:
        await ask(MetricQuery("disk", "checkout"))
    assert describe(caught.value) == "New Relic: query rejected: no NRQL for disk (add it under metrics:)"
    route.mock(return_value=answer([{"average.duration": 0.1, "max.duration": 0.9}]))
    with pytest.raises(BackendQueryError) as caught:
        await ask(MetricQuery("SELECT average(duration), max(duration) FROM Transaction", raw=True))
    assert describe(caught.value) == "New Relic: query rejected: the query selects more than one value"


def test_values_are_quoted_so_nothing_leaves_the_literal() -> None:
    hostile = "x' OR appName LIKE '%"
    nrql, facet = expand(DEFAULT_TEMPLATES["latency"], hostile)
    assert nrql == "SELECT average(duration) FROM Transaction WHERE appName = 'x\\' OR appName LIKE \\'%'"
    assert facet is None and " OR " not in code_only(nrql)
    assert literal("C:\\temp\\'") == "'C:\\\\temp\\\\\\''"
    assert literal("two\nlines\r\x07 here") == "'two lines here'"
    for unusable in ("", " \n ", "x" * 201):
        with pytest.raises(BackendQueryError):
            literal(unusable)
    assert ago(3600) == "1 hour ago" and ago(5400) == "90 minutes ago" and ago(45) == "45 seconds ago"
    assert ago(86400 * 7) == "7 days ago"


def test_log_nrql_is_built_from_escaped_parts() -> None:
    query = LogQuery(("time'out", "50%"), service="pay'ment", level="error", range_s=900)
    nrql = log_nrql(query, "Log", ["service.name", "service"], "level", 20)
    assert nrql == (
        "SELECT `timestamp`, `message`, `level`, `service.name`, `service`, `hostname` FROM `Log`"
        " WHERE (`service.name` = 'pay\\'ment' OR `service` = 'pay\\'ment')"
        " AND (`level` LIKE 'error' OR `level` LIKE 'err' OR `level` LIKE 'fatal' OR `level` LIKE 'critical'"
        " OR `level` LIKE 'crit' OR `level` LIKE 'emergency' OR `level` LIKE 'alert' OR `level` LIKE 'severe'"
        " OR `level` LIKE 'panic')"
        " AND `message` LIKE '%time\\'out%' AND `message` LIKE '%50%%'"
        " SINCE 15 minutes ago ORDER BY timestamp DESC LIMIT 20"
    )
    plain = log_nrql(LogQuery(level="Debug"), "Log_payments", ["service.name"], "log.level", 5)
    assert plain == (
        "SELECT `timestamp`, `message`, `log.level`, `service.name`, `hostname` FROM `Log_payments`"
        " WHERE `log.level` LIKE 'debug' SINCE 1 hour ago ORDER BY timestamp DESC LIMIT 5"
    )


def test_templates_are_checked_when_loaded() -> None:
    assert check_template(DEFAULT_TEMPLATES["error_rate"]) == DEFAULT_TEMPLATES["error_rate"]
    for bad in (
        "SELECT count(*) FROM Transaction WHERE name LIKE '%{service}%'",  # {service} only as a whole value
        "SELECT count(*) FROM Transaction WHERE appName = {service}",
        "SELECT count(*) FROM Transaction SINCE 1 day ago",  # the bot adds the time range
        "SELECT count(*) FROM Transaction TIMESERIES",
        "DROP everything",
        "SELECT a FROM T\nSELECT b FROM U",
    ):
        with pytest.raises(ValidationError):
            NewRelicConfig(account_id=1, metrics={"x": bad})
    assert NewRelicConfig(account_id=1, metrics={"x": "SELECT count(*) FROM T WHERE name = 'since'"}).metrics


async def test_bad_sections_are_refused_by_name() -> None:
    async with new_client() as client:
        for section, field in (({}, "account_id"), ({"account_id": "abc"}, "account_id"),
                               ({"account_id": 1, "region": "asia"}, "region"),
                               ({"account_id": 1, "api_url": "file:///etc/passwd"}, "api_url"),
                               ({"account_id": 1, "service_attributes": ["a`b"]}, "service_attributes"),
                               ({"account_id": 1, "log_event_type": "Log WHERE 1"}, "log_event_type")):  # fmt: skip
            with pytest.raises(MonitorConfigError) as caught:
                build_monitors({"newrelic": section}, BuildContext(client, secrets=SECRETS), guard=False)
            assert str(caught.value) == f"monitor 'newrelic': invalid {field}" and KEY not in str(caught.value)
        with pytest.raises(MonitorConfigError) as caught:  # a key in the file is an unknown key, never echoed
            build_monitors({"newrelic": {"account_id": 1, "apikey": KEY}}, BuildContext(client, secrets=SECRETS),
                           guard=False)  # fmt: skip
        assert str(caught.value).startswith("monitors.newrelic.apikey: unknown") and KEY not in str(caught.value)


# --- logs --------------------------------------------------------------------------------------


async def test_logs_from_the_documented_records(respx_mock: respx.MockRouter) -> None:
    route = respx_mock.post(NERDGRAPH).mock(return_value=fixture("nerdgraph_nrql_logs.json"))
    async with new_client() as client:
        newrelic = monitor(client)
        result = await newrelic.query(LogQuery(("logged",), service="login-service", level="error", range_s=900))
        nrql = sent(route)["nrql"]
        assert nrql.startswith("SELECT `timestamp`, `message`, `level`, `service.name`, `entity.name`, `service`,")
        assert (
            "(`service.name` = 'login-service' OR `entity.name` = 'login-service' OR `service` = 'login-service')"
            in nrql
        )
        assert nrql.endswith("AND `message` LIKE '%logged%' SINCE 15 minutes ago ORDER BY timestamp DESC LIMIT 20")
        text = newrelic.format(result)
    head, first, second = text.split("\n")
    assert head == 'login-service "logged": 2 errors in the last 15m, newest first:'
    assert first.endswith(" ago User 'xyz' logged out") and second.endswith(" ago User 'xyz' logged in")
    assert [line.timestamp for line in result.lines] == [1550086450.124, 1550086449.124]  # type: ignore[union-attr]


async def test_logs_of_every_service_name_their_source(respx_mock: respx.MockRouter) -> None:
    route = respx_mock.post(NERDGRAPH).mock(return_value=fixture("nerdgraph_nrql_logs.json"))
    text = await ask(LogQuery())
    assert text.split("\n")[1].endswith(" ago login-service: User 'xyz' logged out")
    assert " WHERE " not in sent(route)["nrql"]
    route.mock(return_value=answer([{"timestamp": 1, "message": "m", "hostname": "web-1"}]))
    assert (await ask(LogQuery())).endswith(" ago web-1: m")
    route.mock(return_value=answer([]))
    assert await ask(LogQuery(service="payment", level="error")) == "payment: 0 errors in the last 1h"
    assert await ask(LogQuery(("db",), range_s=1800)) == 'all services "db": no matching lines in the last 30m'


async def test_a_full_page_is_not_counted(respx_mock: respx.MockRouter) -> None:
    rows = [{"timestamp": 1_700_000_000_000 - n, "message": f"line {n}"} for n in range(20)]
    respx_mock.post(NERDGRAPH).mock(return_value=answer(rows))
    assert (await ask(LogQuery(service="payment"))).startswith("payment: latest lines in the last 1h, newest first:")


async def test_hostile_search_words_are_refused_or_kept_as_text(respx_mock: respx.MockRouter) -> None:
    route = respx_mock.post(NERDGRAPH).mock(return_value=answer([]))
    text = await ask(LogQuery(('db\' OR "x"\n STOP\r\x07\\',), service="pay\nment", level="error"))
    assert "\r" not in text and "\x07" not in text and "\n" not in text and len(text) < 160
    assert "`message` LIKE '%db\\' OR \"x\" STOP \\\\%'" in sent(route)["nrql"]
    with pytest.raises(BackendQueryError) as caught:
        await ask(LogQuery(("y" * 5000,)))
    assert describe(caught.value) == "New Relic: query rejected: value too long"
    with pytest.raises(BackendQueryError) as caught:
        await ask(LogQuery(tuple(f"{n:02d}" * 75 for n in range(30))))
    assert describe(caught.value) == "New Relic: query rejected: query too long"
    assert route.call_count == 1


async def test_hostile_log_lines_stay_short_and_safe(respx_mock: respx.MockRouter) -> None:
    evil = "ERROR \x1b[31m\x07 api_key=abc123 see http://10.0.0.7/admin " + "z" * 5000
    row = {"timestamp": 1_700_000_000_000, "message": evil, "service.name": "s\r\nvc" + "v" * 500}
    route = respx_mock.post(NERDGRAPH).mock(return_value=answer([row] * 3))
    text = await ask(LogQuery())
    assert "\x1b" not in text and "\x07" not in text and "abc123" not in text and "10.0.0.7" not in text
    assert len(text) <= 300 and len(text.split("\n")) == 2
    rows = [{"appName": "web\nSTOP\x07" + "x" * 5000, "count": 3}] * 5
    route.mock(return_value=answer(rows, ["appName"]))
    text = await ask(MetricQuery("requests"))
    assert "\n" not in text and "\x07" not in text and len(text) < 160


# --- key, health, errors NerdGraph answers with HTTP 200 --------------------------------------


async def test_without_the_key_nothing_is_sent(respx_mock: respx.MockRouter) -> None:
    route = respx_mock.post(NERDGRAPH).mock(return_value=fixture("nerdgraph_nrql_single.json"))
    async with new_client() as client:
        newrelic = monitor(client, secrets={})
        with pytest.raises(CredentialsMissing) as caught:
            await newrelic.query(MetricQuery("cpu"))
        assert describe(caught.value) == "New Relic: credentials not set (NEW_RELIC_API_KEY)"
        assert await newrelic.health() == Health(False, "NEW_RELIC_API_KEY not set")
    assert not route.called


async def test_health_is_one_cheap_query(respx_mock: respx.MockRouter) -> None:
    route = respx_mock.post(NERDGRAPH).mock(return_value=fixture("nerdgraph_nrql_single.json"))
    async with new_client() as client:
        assert await monitor(client).health() == Health(True, "1000 transactions in the last minute")
        assert sent(route)["nrql"] == HEALTH_NRQL
        route.mock(return_value=fixture("nerdgraph_error_bad_api_key.json"))
        with pytest.raises(BackendAuthError):
            await monitor(client).health()
        route.mock(return_value=answer([]))
        with pytest.raises(BadBackendResponse):
            await monitor(client).health()


@pytest.mark.parametrize(
    ("name", "error", "text"),
    [
        ("nerdgraph_error_nrql_syntax.json", BackendQueryError,
         "New Relic: query rejected: Error at line 1 position 8, unexpected 'FROM'"),
        ("nerdgraph_error_bad_api_key.json", BackendAuthError,
         "New Relic: access denied (API key refused), check credentials"),
        ("nerdgraph_error_timeout.json", BackendTimeout, "New Relic: timed out after 5 s"),
        ("nerdgraph_error_too_many_requests.json", BackendError, "New Relic: failed (rate limited)"),
        ("nerdgraph_error_internal.json", BackendError, "New Relic: failed (server error)"),
    ],
)  # fmt: skip
@pytest.mark.parametrize(
    "query", [MetricQuery("SELECT FROM Transaction", raw=True), LogQuery()], ids=["metrics", "logs"]
)
async def test_graphql_errors_are_one_line(
    respx_mock: respx.MockRouter, query: MetricQuery | LogQuery, name: str, error: type, text: str
) -> None:
    respx_mock.post(NERDGRAPH).mock(return_value=fixture(name))
    with pytest.raises(error) as caught:
        await ask(query)
    assert type(caught.value) is error and describe(caught.value) == text


async def test_errors_beside_a_result_do_not_spoil_it(respx_mock: respx.MockRouter) -> None:
    body = {"data": {"actor": {"account": {"nrql": {"results": [{"count": 7}]}}}},
            "errors": [{"message": "This field is deprecated! Please use `x` instead."}]}  # fmt: skip
    respx_mock.post(NERDGRAPH).mock(return_value=httpx.Response(200, json=body))
    assert await ask(MetricQuery("requests", "checkout")) == "checkout requests: 7/s"


async def test_the_key_never_reaches_a_reply(respx_mock: respx.MockRouter) -> None:
    errors = {"errors": [{"message": f"key {KEY} cannot query account {ACCOUNT} at https://api.newrelic.com/x"}]}
    route = respx_mock.post(NERDGRAPH).mock(return_value=httpx.Response(200, json={"data": None, **errors}))
    with pytest.raises(BackendQueryError) as caught:
        await ask(MetricQuery("cpu"))
    assert KEY not in describe(caught.value) and "api.newrelic.com" not in describe(caught.value)
    assert describe(caught.value).startswith("New Relic: query rejected: key <key> cannot query account")
    route.mock(return_value=httpx.Response(400, json=errors))
    with pytest.raises(BackendQueryError) as caught:
        await ask(LogQuery())
    assert KEY not in describe(caught.value)


# --- configuration and registration -----------------------------------------------------------


async def test_built_through_the_registry_for_its_region() -> None:
    async with new_client() as client:
        context = BuildContext(client, secrets=SECRETS)
        registry = build_monitors({"newrelic": {"account_id": str(ACCOUNT)}}, context, guard=False)
        newrelic = registry.get("newrelic")
        assert isinstance(newrelic, NewRelic) and newrelic.http.base_url == "https://api.newrelic.com"
        assert newrelic.config.account_id == ACCOUNT and newrelic.http.headers == {"API-Key": KEY}
        assert newrelic.kinds == frozenset({Kind.METRICS, Kind.LOGS})
        assert registry.for_system("newrelic") == [newrelic]
        with pytest.raises(BackendQueryError):
            await newrelic.query(DbQuery())
        eu = build_monitors({"nr_eu": {"type": "newrelic", "account_id": 1, "region": "eu"}}, context, guard=False)
        assert eu.get("nr_eu").http.base_url == "https://api.eu.newrelic.com"  # type: ignore[union-attr]
    assert PRIORITY[Kind.METRICS].index("newrelic") < PRIORITY[Kind.METRICS].index("host")
    assert "newrelic" in PRIORITY[Kind.LOGS]


def test_health_newrelic_names_the_system_configured_or_not() -> None:
    assert Catalog.from_config({}).systems["newrelic"] == ("newrelic", "new relic")
    configured = Catalog.from_config({"monitors": {"newrelic": {"account_id": 1}}})
    assert configured.systems["newrelic"] == ("newrelic", "new relic")


def test_the_key_comes_from_the_environment_only(tmp_path: Path) -> None:
    settings = load_settings(environ={"NEW_RELIC_API_KEY": KEY}, env_file=None)
    assert settings.secrets()["new_relic_api_key"] == KEY and KEY not in repr(settings)
    config = tmp_path / "operator.yaml"
    config.write_text(f"new_relic_api_key: {KEY}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(config, environ={}, env_file=None)
    assert KEY not in str(caught.value)


# --- faults, on a loopback server that misbehaves --------------------------------------------

QUERIES: list[Callable[[], MetricQuery | LogQuery]] = [lambda: MetricQuery("cpu"), lambda: LogQuery(("x",))]


@pytest.mark.parametrize("query", QUERIES, ids=["metrics", "logs"])
async def test_a_hung_backend_times_out_on_time(fault_server: FaultServer, query: Callable[[], Any]) -> None:
    fault_server.hang(HANG_S)
    started = time.monotonic()
    with pytest.raises(BackendTimeout) as caught:
        await ask(query(), fault_server.url, timeout_s=0.5)
    assert time.monotonic() - started < 1.5
    assert describe(caught.value) == "New Relic: timed out after 0.5 s"
    assert fault_server.behaviour.seen == ["/graphql"]


async def test_the_guard_enforces_the_deadline_too(fault_server: FaultServer) -> None:
    fault_server.hang(HANG_S)
    async with new_client() as client:
        guarded = Guarded(monitor(client, fault_server.url, timeout_s=0.5))
        started = time.monotonic()
        with pytest.raises(BackendTimeout):
            await guarded.health()
        assert time.monotonic() - started < 1.5


@pytest.mark.parametrize(
    ("status", "error", "text"),
    [
        (500, BackendError, "New Relic: failed (HTTP 500)"),
        (503, BackendUnavailable, "New Relic: unreachable (HTTP 503)"),
        (401, BackendAuthError, "New Relic: access denied (HTTP 401), check credentials"),
        (403, BackendAuthError, "New Relic: access denied (HTTP 403), check credentials"),
        (400, BackendQueryError, "New Relic: query rejected: HTTP 400"),
    ],
)
@pytest.mark.parametrize("query", QUERIES, ids=["metrics", "logs"])
async def test_http_errors(
    fault_server: FaultServer, query: Callable[[], Any], status: int, error: type, text: str
) -> None:
    fault_server.answer(status, b"secret-internal-detail")
    with pytest.raises(error) as caught:
        await ask(query(), fault_server.url)
    assert describe(caught.value) == text


async def test_an_http_400_gives_nerdgraphs_reason(fault_server: FaultServer) -> None:
    fault_server.answer(400, (FIXTURES / "nerdgraph_error_nrql_syntax.json").read_bytes())
    with pytest.raises(BackendQueryError) as caught:
        await ask(MetricQuery("SELECT FROM Transaction", raw=True), fault_server.url)
    assert describe(caught.value) == "New Relic: query rejected: Error at line 1 position 8, unexpected 'FROM'"


async def test_connection_refused() -> None:
    with pytest.raises(BackendUnavailable) as caught:
        await ask(LogQuery(), refused_url())
    assert describe(caught.value) == "New Relic: unreachable (cannot connect)"


@pytest.mark.parametrize(
    "body",
    [
        b"<html>proxy error</html>",
        b"[]",
        b"{}",
        b'{"data": null}',
        b'{"data": {"actor": {"account": null}}}',
        b'{"data": {"actor": {"account": {"nrql": {"results": {}}}}}}',
        b'{"data": {"actor": {"account": {"nrql": {"results": ["x"]}}}}}',
        b'{"data": {"actor": {"account": {"nrql": {"results": [{"timestamp": "yesterday", "count": "abc"}]}}}}}',
        b'{"data": {"actor": {"account": {"nrql": {"results": [{"timestamp": true, "count": true}]}}}}}',
        b'{"data": {"actor": {"account": {"nrql": {"results": [{"appName": "a"}]}}}}}',
        b'{"errors": "everything"}',
    ],
)
@pytest.mark.parametrize("query", QUERIES, ids=["metrics", "logs"])
async def test_garbage_answers(fault_server: FaultServer, query: Callable[[], Any], body: bytes) -> None:
    fault_server.answer(200, body)
    with pytest.raises(BadBackendResponse):
        await ask(query(), fault_server.url)


async def test_a_huge_answer_is_refused_with_bounded_memory(fault_server: FaultServer) -> None:
    fault_server.answer(200, b"", endless=True)
    tracemalloc.start()
    try:
        with pytest.raises(BadBackendResponse) as caught:
            await ask(LogQuery(), fault_server.url, timeout_s=10)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert describe(caught.value) == "New Relic: unreadable answer (answer too large)"
    assert peak < 16 * 2**20
