"""Prometheus against a real Prometheus server scraping an exporter whose values the test sets,
and against a loopback server that misbehaves on purpose."""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import pytest

from bot.settings import DEFAULT_METRICS
from monitors.base import MetricQuery
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
from monitors.prometheus import Prometheus, PrometheusConfig, escape_label_value, expand
from monitors.resilience import Guarded
from tests.servers import Exporter, FaultServer, PrometheusServer, refused_url, wait_until

pytestmark = [pytest.mark.anyio, pytest.mark.servers]
FIXTURES = Path(__file__).parent.parent / "fixtures" / "prometheus"


def monitor(url: str, timeout_s: float = 3.0, client=None) -> Prometheus:  # type: ignore[no-untyped-def]
    return Prometheus("prometheus", PrometheusConfig(url=url, timeout_s=timeout_s), client, DEFAULT_METRICS)


async def ask(url: str, query: MetricQuery, timeout_s: float = 3.0) -> str:
    async with new_client() as client:
        prom = monitor(url, timeout_s, client)
        return prom.format(await prom.query(query))


async def test_health(prometheus_server: PrometheusServer) -> None:
    async with new_client() as client:
        assert (await monitor(prometheus_server.url, client=client).health()).ok


async def test_alias_with_a_service(prometheus_server: PrometheusServer) -> None:
    assert await ask(prometheus_server.url, MetricQuery("memory", "checkout")) == "checkout memory: 512.0 MiB"


async def test_alias_without_a_service_matches_every_service(prometheus_server: PrometheusServer) -> None:
    # The template averages; with no service its matcher becomes service=~".+" (checkout and payment).
    assert await ask(prometheus_server.url, MetricQuery("memory")) == "all services memory: 320.0 MiB"


async def test_several_series_are_named_biggest_first(prometheus_server: PrometheusServer) -> None:
    text = await ask(prometheus_server.url, MetricQuery("process_resident_memory_bytes", raw=True))
    assert text == "query: checkout 537M, payment 134M"


async def test_up_reads_as_a_word(prometheus_server: PrometheusServer) -> None:
    assert await ask(prometheus_server.url, MetricQuery("up", "checkout")) == "checkout up: up"


async def test_raw_promql(prometheus_server: PrometheusServer) -> None:
    text = await ask(prometheus_server.url, MetricQuery('operator_test_known_value{service="checkout"} * 2', raw=True))
    assert text == "query: 84"


async def test_rates_come_back_as_real_numbers(prometheus_server: PrometheusServer, exporter: Exporter) -> None:
    # 10 errors in 100 requests since the last scrape: the error rate over 5m is 10%.
    exporter.requests.labels("checkout", "200").inc(90)
    exporter.requests.labels("checkout", "500").inc(10)

    def rated() -> bool:
        rows = prometheus_server.query('sum(rate(http_requests_total{service="checkout"}[5m]))')
        return bool(rows) and float(rows[0]["value"][1]) > 0  # type: ignore[index]

    wait_until(rated, 30, "rates")
    text = await ask(prometheus_server.url, MetricQuery("error_rate", "checkout"))
    assert text.startswith("checkout error rate: ") and text.endswith("%")
    assert 5 <= float(text.removeprefix("checkout error rate: ").removesuffix("%")) <= 10


async def test_range_gives_last_min_max_average_and_trend(prometheus_server: PrometheusServer) -> None:
    text = await ask(prometheus_server.url, MetricQuery("memory", "checkout", range_s=3600))
    assert text == "checkout memory 1h: now 512.0 MiB, min 512.0 MiB, max 512.0 MiB, avg 512.0 MiB, steady"


async def test_no_data_is_its_own_answer(prometheus_server: PrometheusServer) -> None:
    assert await ask(prometheus_server.url, MetricQuery("memory", "web")) == "web memory: no data"
    assert (
        await ask(prometheus_server.url, MetricQuery("memory", "web", range_s=600))
        == "web memory: no data in that range"
    )


async def test_hostile_service_values_are_escaped_not_pasted(prometheus_server: PrometheusServer) -> None:
    hostile = 'checkout"} or vector(1) or {a="'
    expr = expand(DEFAULT_METRICS["memory"], hostile)
    assert 'service="checkout\\"} or vector(1) or {a=\\""' in expr
    # Prometheus reads it as one odd label value: no data, and no injected vector(1).
    assert await ask(prometheus_server.url, MetricQuery("memory", hostile)) == f"{hostile} memory: no data"


def test_escaping_and_the_any_service_matcher() -> None:
    assert escape_label_value('a\\b"c\nd') == 'a\\\\b\\"c\\nd'
    assert expand('up{service="{service}"}', None) == 'up{service=~".+"}'
    assert expand('up{service="{service}"}', "web") == 'up{service="web"}'


async def test_a_bad_query_is_refused_with_the_reason(prometheus_server: PrometheusServer) -> None:
    with pytest.raises(BackendQueryError) as caught:
        await ask(prometheus_server.url, MetricQuery("sum(rate(x[5m])", raw=True))
    text = describe(caught.value)
    assert text.startswith("Prometheus: query rejected: ")
    assert "parse error" in text and "127.0.0.1" not in text


# --- faults, on a loopback server that misbehaves --------------------------------------------


async def test_a_hung_backend_times_out_on_time(fault_server: FaultServer) -> None:
    fault_server.hang()
    started = time.monotonic()
    with pytest.raises(BackendTimeout) as caught:
        await ask(fault_server.url, MetricQuery("cpu"), timeout_s=0.5)
    assert time.monotonic() - started < 1.5
    assert describe(caught.value) == "Prometheus: timed out after 0.5 s"


async def test_the_guard_enforces_the_deadline_too(fault_server: FaultServer) -> None:
    fault_server.hang()
    async with new_client() as client:
        guarded = Guarded(monitor(fault_server.url, 0.5, client))
        started = time.monotonic()
        with pytest.raises(BackendTimeout):
            await guarded.health()
        assert time.monotonic() - started < 1.5


@pytest.mark.parametrize(
    ("status", "error", "text"),
    [
        (500, BackendError, "Prometheus: failed (HTTP 500)"),
        (503, BackendUnavailable, "Prometheus: unreachable (HTTP 503)"),
        (401, BackendAuthError, "Prometheus: access denied (HTTP 401), check credentials"),
        (403, BackendAuthError, "Prometheus: access denied (HTTP 403), check credentials"),
    ],
)
async def test_http_errors(fault_server: FaultServer, status: int, error: type, text: str) -> None:
    fault_server.answer(status, b"secret-internal-detail")
    with pytest.raises(error) as caught:
        await ask(fault_server.url, MetricQuery("cpu"))
    assert describe(caught.value) == text


async def test_the_recorded_error_body_is_the_reason(fault_server: FaultServer) -> None:
    fault_server.answer(422, (FIXTURES / "error_execution_422.json").read_bytes())
    with pytest.raises(BackendQueryError) as caught:
        await ask(fault_server.url, MetricQuery("x", raw=True))
    text = describe(caught.value)
    assert text.startswith("Prometheus: query rejected: found duplicate series")
    assert "127.0.0.1" not in text and len(text) < 120


@pytest.mark.parametrize(
    "body",
    [
        b"<html>proxy error</html>",
        b'{"status": "success"}',
        b'{"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, "abc"]}]}}',
        b"[]",
    ],
)
async def test_garbage_answers(fault_server: FaultServer, body: bytes) -> None:
    fault_server.answer(200, body)
    with pytest.raises(BadBackendResponse):
        await ask(fault_server.url, MetricQuery("cpu"))


async def test_recorded_answers_parse(fault_server: FaultServer) -> None:
    fault_server.answer(200, (FIXTURES / "query_vector.json").read_bytes())
    assert await ask(fault_server.url, MetricQuery("up")) == "all services up: localhost:9090 up, localhost:9100 DOWN"
    fault_server.answer(200, (FIXTURES / "query_scalar_captured.json").read_bytes())
    assert await ask(fault_server.url, MetricQuery("1+1", raw=True)) == "query: 2"
    fault_server.answer(200, (FIXTURES / "query_range_matrix.json").read_bytes())
    text = await ask(fault_server.url, MetricQuery("up", range_s=3600))
    assert text.startswith("all services up 1h: localhost:9090 now up")


async def test_connection_refused() -> None:
    with pytest.raises(BackendUnavailable) as caught:
        await ask(refused_url(), MetricQuery("cpu"))
    assert describe(caught.value) == "Prometheus: unreachable (cannot connect)"


async def test_a_huge_answer_is_refused_with_bounded_memory(fault_server: FaultServer) -> None:
    fault_server.answer(200, b"", endless=True)
    tracemalloc.start()
    try:
        with pytest.raises(BadBackendResponse) as caught:
            await ask(fault_server.url, MetricQuery("cpu"), timeout_s=10)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert describe(caught.value) == "Prometheus: unreadable answer (answer too large)"
    assert peak < 16 * 2**20


async def test_hostile_label_values_in_answers_stay_one_short_line(fault_server: FaultServer) -> None:
    evil = "web\nSTOP\r\x07" + "x" * 500
    body = '{"status":"success","data":{"resultType":"vector","result":[{"metric":{"service":%s},"value":[1,"3"]}]}}'
    import json

    fault_server.answer(200, body % json.dumps(evil))
    text = await ask(fault_server.url, MetricQuery("cpu"))
    assert "\n" not in text and "\r" not in text and "\x07" not in text
    assert len(text) < 80
