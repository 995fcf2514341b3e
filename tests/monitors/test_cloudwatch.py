"""CloudWatch against moto in server mode (real log events and metric data, over real HTTP, through
boto3), and against a loopback server that misbehaves on purpose."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from monitors import cloudwatch as cloudwatch_module
from monitors.base import Kind, LogQuery, MetricQuery
from monitors.cloudwatch import (
    CloudWatch,
    CloudWatchConfig,
    CloudWatchMetric,
    filter_pattern,
    metric_query,
    pattern_term,
    period_for,
    slices,
)
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
from tests.monitors.servers_aws import REGION, MotoServer, fake_credentials, moto_server, without_credentials
from tests.servers import FaultServer, refused_url

pytestmark = [pytest.mark.anyio, pytest.mark.servers]
HANG_S = 3.0
"""How long a hung server keeps a request: past every deadline tested, short enough that its late
answer to a closed socket lands while the session is still running."""
FIXTURES = Path(__file__).parent.parent / "fixtures" / "cloudwatch"
NAMESPACE = "Operator/Test"
METRICS: dict[str, Any] = {
    "cpu": {"namespace": NAMESPACE, "metric": "CPUUtilization", "dimensions": {"Service": "{service}"}, "unit": "%"},
    "latency": {"namespace": NAMESPACE, "metric": "Latency", "dimensions": {"Service": "{service}"},
                "unit": "s", "scale": 0.001},
}  # fmt: skip


@pytest.fixture(scope="module")
def aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    with moto_server(tmp_path_factory.mktemp("aws")) as server:
        server.log_events("/app/payment", "web-1", [
            (300, "ERROR timeout talking to db-1"),
            (200, "INFO request served in 12 ms"),
            (60, "ERROR timeout talking to db-2"),
            (30, "ERROR timeout talking to db-2"),
        ])  # fmt: skip
        server.log_events("/app/all", "mixed", [
            (90, "checkout ERROR card declined for order 17"),
            (80, "search ERROR index missing"),
        ])  # fmt: skip
        server.metric(NAMESPACE, "CPUUtilization", {"Service": "checkout"}, [(125, 40.0), (65, 42.0)], "Percent")
        server.metric(NAMESPACE, "Latency", {"Service": "checkout"}, [(65, 250.0)], "Milliseconds")
        yield server


def monitor(url: str, timeout_s: float = 3.0, **config: Any) -> CloudWatch:
    settings = {"log_group": "/app/all", "log_groups": {"payment": "/app/payment"}, "metrics": METRICS, **config}
    return CloudWatch("cloudwatch", CloudWatchConfig(region=REGION, endpoint_url=url, timeout_s=timeout_s, **settings))


async def ask(url: str, query: LogQuery | MetricQuery, timeout_s: float = 3.0, **config: Any) -> str:
    watch = monitor(url, timeout_s, **config)
    return watch.format(await watch.query(query))


# --- logs --------------------------------------------------------------------------------------


async def test_errors_of_a_service_come_from_its_own_group_newest_first(aws: MotoServer) -> None:
    text = await ask(aws.url, LogQuery(("timeout",), service="payment", level="error"))
    head, *lines = text.split("\n")
    assert head == 'payment "timeout": 3 errors in the last 1h, newest first:'
    assert lines[0].endswith("ago ERROR timeout talking to db-2 (x2)") and lines[0].startswith("3")
    assert lines[1] == "5m ago ERROR timeout talking to db-1"
    assert len(lines) == 2


async def test_a_service_without_a_group_is_searched_for_in_the_default_group(aws: MotoServer) -> None:
    text = await ask(aws.url, LogQuery(service="checkout", level="error"))
    assert text.startswith("checkout: 1 errors in the last 1h, newest first:\n")
    assert text.endswith("ago checkout ERROR card declined for order 17")


async def test_no_match_is_an_answer_not_a_failure(aws: MotoServer) -> None:
    assert await ask(aws.url, LogQuery(("db-9",), service="payment", level="error")) == (
        'payment "db-9": 0 errors in the last 1h'
    )
    assert await ask(aws.url, LogQuery(("db-1",), service="payment", range_s=120)) == (
        'payment "db-1": no matching lines in the last 2m'
    )


async def test_the_newest_lines_win_even_when_older_ones_fill_pages(
    aws: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    aws.log_events("/app/busy", "s", [(3000 - 60 * i, f"line {i:02d}") for i in range(40)])
    monkeypatch.setattr(cloudwatch_module, "PAGE_SIZE", 3)
    monkeypatch.setattr(cloudwatch_module, "MAX_PAGES", 2)
    text = await ask(aws.url, LogQuery(service="busy", limit=2), log_groups={"busy": "/app/busy"})
    head, *lines = text.split("\n")
    assert head == "busy: latest lines in the last 1h, newest first:"  # not every page was read: no count
    assert [line.split(" ago ")[-1] for line in lines] == ["line 39", "line 38"]


async def test_a_missing_log_group_is_a_rejected_query(aws: MotoServer) -> None:
    with pytest.raises(BackendQueryError) as caught:
        await ask(aws.url, LogQuery(service="ghost"), log_groups={"ghost": "/app/ghost"})
    assert describe(caught.value) == "CloudWatch: query rejected: The specified log group does not exist."


async def test_no_group_for_the_service_and_no_default() -> None:
    watch = monitor("http://127.0.0.1:9", log_group=None)
    with pytest.raises(BackendQueryError) as caught:
        await watch.query(LogQuery(service="web"))
    assert describe(caught.value) == "CloudWatch: query rejected: no log group for web"


def test_filter_pattern_terms_are_quoted_and_escaped_as_data() -> None:
    assert pattern_term("ERROR") == "ERROR"
    assert pattern_term("db-1") == '"db-1"'
    assert pattern_term('say "hi" \\ now') == '"say \\"hi\\" \\\\ now"'
    assert pattern_term("a\nb\x07c") == '"a b c"'
    assert pattern_term("?ERROR") == '"?ERROR"'  # no OR operator smuggled in
    assert filter_pattern(["ERROR", "{ $.x = 1 }"]) == 'ERROR "{ $.x = 1 }"'  # no JSON pattern either
    with pytest.raises(BackendQueryError):
        filter_pattern(["x" * 5000])


def test_slices_cover_the_range_newest_first_without_overlap() -> None:
    parts = slices(0, 16_000)
    assert parts == [(15_000, 16_000), (14_000, 14_999), (12_000, 13_999), (8_000, 11_999), (0, 7_999)]


async def test_hostile_search_words_stay_one_short_safe_line(aws: MotoServer) -> None:
    hostile = 'db"\n STOP\r\x07' + "x" * 900
    text = await ask(aws.url, LogQuery((hostile,), service="payment\nadmin", level="error"))
    assert "\r" not in text and "\x07" not in text and "\n" not in text
    assert len(text) < 160
    with pytest.raises(BackendQueryError) as caught:
        await ask(aws.url, LogQuery(("y" * 5000,), service="payment"))
    assert describe(caught.value) == "CloudWatch: query rejected: search too long"


async def test_hostile_log_lines_stay_short_and_safe(aws: MotoServer) -> None:
    aws.log_events("/app/evil", "s", [(10, "ERROR \x1b[31mred\x07 token=hunter2 " + "z" * 5000)])
    text = await ask(aws.url, LogQuery(service="evil"), log_groups={"evil": "/app/evil"})
    assert "\x1b" not in text and "\x07" not in text and "hunter2" not in text
    assert len(text) < 300 and all(len(line) < 160 for line in text.split("\n"))


# --- metrics -----------------------------------------------------------------------------------


async def test_a_metric_now_is_the_latest_datapoint(aws: MotoServer) -> None:
    assert await ask(aws.url, MetricQuery("cpu", "checkout")) == "checkout cpu: 42.0%"


async def test_scale_turns_milliseconds_into_seconds(aws: MotoServer) -> None:
    assert await ask(aws.url, MetricQuery("latency", "checkout")) == "checkout latency: 250 ms"


async def test_a_range_gives_now_min_max_average(aws: MotoServer) -> None:
    text = await ask(aws.url, MetricQuery("cpu", "checkout", range_s=3600))
    assert text == "checkout cpu 1h: now 42.0%, min 40.0%, max 42.0%, avg 41.0%, steady"


async def test_no_datapoints_is_no_data(aws: MotoServer) -> None:
    assert await ask(aws.url, MetricQuery("cpu", "web")) == "web cpu: no data"
    assert await ask(aws.url, MetricQuery("cpu", "web", range_s=600)) == "web cpu: no data in that range"


async def test_an_unknown_alias_or_raw_query_is_refused(aws: MotoServer) -> None:
    with pytest.raises(BackendQueryError) as caught:
        await ask(aws.url, MetricQuery("disk", "checkout"))
    assert describe(caught.value) == "CloudWatch: query rejected: no metric disk (have cpu, latency)"
    with pytest.raises(BackendQueryError):
        await ask(aws.url, MetricQuery("SELECT AVG(CPUUtilization)", raw=True))


async def test_hostile_service_values_are_dimension_values_only(aws: MotoServer) -> None:
    hostile = 'checkout"}\n{"Name": "x'
    assert await ask(aws.url, MetricQuery("cpu", hostile)) == 'checkout"} {"Name": "x cpu: no data'
    with pytest.raises(BackendQueryError) as caught:
        await ask(aws.url, MetricQuery("cpu", "s" * 5000))
    assert describe(caught.value) == "CloudWatch: query rejected: service name not usable as a dimension"


def test_metric_queries_are_data_and_drop_the_service_dimension_when_none_is_asked() -> None:
    spec = CloudWatchMetric(namespace="AWS/ECS", metric="CPUUtilization", stat="p99",
                            dimensions={"ClusterName": "prod", "ServiceName": "{service}"})  # fmt: skip
    assert metric_query(spec, "web", 60)["MetricStat"]["Metric"]["Dimensions"] == [
        {"Name": "ClusterName", "Value": "prod"}, {"Name": "ServiceName", "Value": "web"}
    ]  # fmt: skip
    assert metric_query(spec, None, 60)["MetricStat"]["Metric"]["Dimensions"] == [
        {"Name": "ClusterName", "Value": "prod"}
    ]


def test_queries_have_the_documented_shape() -> None:
    """The recorded AWS CLI example's query, rebuilt from config, is the same data."""
    recorded = json.loads((FIXTURES / "get_metric_data_queries_billing.json").read_text())
    spec = CloudWatchMetric(namespace="AWS/Billing", metric="EstimatedCharges", dimensions={"Currency": "USD"},
                            period_s=21600, stat="Maximum")  # fmt: skip
    built = metric_query(spec, None, 21600)
    built["Id"] = recorded[0]["Id"]
    del built["ReturnData"]
    assert built == recorded[0]


def test_periods_widen_for_long_ranges_in_whole_minutes() -> None:
    spec = CloudWatchMetric(namespace="n", metric="m")
    assert period_for(spec, 900) == 60
    assert period_for(spec, 86400) == 720
    assert period_for(CloudWatchMetric(namespace="n", metric="m", period_s=10), 600) == 10
    assert period_for(CloudWatchMetric(namespace="n", metric="m", period_s=10), 7200) == 60


# --- health, credentials and config ----------------------------------------------------------


async def test_health_reads_the_log_group(aws: MotoServer) -> None:
    health = await monitor(aws.url, log_group="/app/payment").health()
    assert health.ok and health.detail == "log group readable"
    missing = await monitor(aws.url, log_group="/app/none", log_groups={}).health()
    assert not missing.ok and missing.detail == "log group not found"


async def test_health_of_a_metrics_only_section(aws: MotoServer) -> None:
    watch = monitor(aws.url, log_group=None, log_groups={})
    assert watch.kinds == frozenset({Kind.METRICS}) and watch.system == "cloudwatch"
    assert (await watch.health()).detail == "metrics readable"


async def test_no_credentials_in_the_chain(aws: MotoServer, tmp_path: Path) -> None:
    with without_credentials(tmp_path):
        watch = monitor(aws.url)
        with pytest.raises(BackendAuthError) as caught:
            await watch.query(LogQuery(service="payment"))
    assert describe(caught.value) == "CloudWatch: credentials not set (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)"


def test_config_is_validated() -> None:
    good = {"region": "eu-west-1", "log_group": "/app/x"}
    CloudWatchConfig(**good)
    for bad in ({"region": "Europe"}, {"endpoint_url": "ftp://x"}, {"log_group": "bad group!"},
                {"metrics": {"cpu": {"namespace": "n", "metric": "m", "stat": "Median"}}},
                {"metrics": {"cpu": {"namespace": "n", "metric": "m", "period_s": 90}}},
                {"log_grup": "/app/x"}, {"aws_secret_access_key": "x"}):  # fmt: skip
        with pytest.raises(ValidationError):
            CloudWatchConfig(**{**good, **bad})


async def test_built_through_the_registry() -> None:
    async with new_client() as client:
        registry = build_monitors({"aws_logs": {"type": "cloudwatch", "region": "eu-west-1", "log_group": "/a"}},
                                  BuildContext(client), guard=False)  # fmt: skip
        watch = registry.get("aws_logs")
        assert watch is not None and watch.kinds == frozenset({Kind.LOGS}) and watch.system == "logs"
        with pytest.raises(MonitorConfigError) as caught:
            build_monitors({"cloudwatch": {"region": "nowhere-1"}}, BuildContext(client))
        assert str(caught.value) == "monitor 'cloudwatch': invalid region"


# --- faults, on a loopback server that misbehaves --------------------------------------------


@pytest.fixture
def credentials(tmp_path: Path) -> Iterator[None]:
    with fake_credentials(tmp_path):
        yield


@pytest.mark.usefixtures("credentials")
async def test_a_hung_endpoint_times_out_on_time(fault_server: FaultServer) -> None:
    fault_server.hang(HANG_S)
    for query in (LogQuery(service="payment"), MetricQuery("cpu", "checkout")):
        started = time.monotonic()
        with pytest.raises(BackendTimeout) as caught:
            await ask(fault_server.url, query, timeout_s=0.5)
        assert time.monotonic() - started < 1.5
        assert describe(caught.value) == "CloudWatch: timed out after 0.5 s"


@pytest.mark.usefixtures("credentials")
async def test_the_guard_enforces_the_deadline_too(fault_server: FaultServer) -> None:
    fault_server.hang(HANG_S)
    guarded = Guarded(monitor(fault_server.url, 0.5))
    started = time.monotonic()
    with pytest.raises(BackendTimeout):
        await guarded.health()
    assert time.monotonic() - started < 1.5


@pytest.mark.usefixtures("credentials")
async def test_connection_refused() -> None:
    with pytest.raises(BackendUnavailable) as caught:
        await ask(refused_url(), LogQuery(service="payment"))
    assert describe(caught.value) == "CloudWatch: unreachable (cannot connect)"


@pytest.mark.usefixtures("credentials")
@pytest.mark.parametrize(
    ("status", "body", "error", "text"),
    [
        (500, b"secret-internal-detail", BackendError, "CloudWatch: failed (HTTP 500)"),
        (503, b"secret-internal-detail", BackendUnavailable, "CloudWatch: unreachable (HTTP 503)"),
        (403, b"secret-internal-detail", BackendAuthError, "CloudWatch: access denied (HTTP 403), check credentials"),
        (
            400,
            b'{"__type": "UnrecognizedClientException", "message": "The security token included in the request is invalid."}',
            BackendAuthError,
            "CloudWatch: access denied (HTTP 400), check credentials",
        ),
        (
            400,
            b'{"__type": "AccessDeniedException", "message": "User: arn:aws:iam::123456789012:user/x is not authorized"}',
            BackendAuthError,
            "CloudWatch: access denied (HTTP 400), check credentials",
        ),
        (
            400,
            b'{"__type": "ThrottlingException", "message": "Rate exceeded"}',
            BackendUnavailable,
            "CloudWatch: unreachable (throttled)",
        ),
        (
            400,
            b'{"__type": "InvalidParameterException", "message": "Bad group arn:aws:logs:eu-west-1:123456789012:log-group:x at http://10.0.0.1:80"}',
            BackendQueryError,
            "CloudWatch: query rejected: Bad group <arn> at <host>",
        ),
    ],
)
async def test_error_answers(fault_server: FaultServer, status: int, body: bytes, error: type, text: str) -> None:
    fault_server.answer(status, body)
    with pytest.raises(error) as caught:
        await ask(fault_server.url, LogQuery(service="payment"))
    assert describe(caught.value) == text


@pytest.mark.usefixtures("credentials")
@pytest.mark.parametrize(
    "body",
    [
        b"<html>proxy error</html>",
        b"[]",
        b"\xff\xfe",
        b"",
        b"{}",
        b'{"events": "abc"}',
        b'{"events": [1, "x"]}',
        b'{"events": [{"message": "no time"}]}',
        b'{"MetricDataResults": 5}',
        b'{"MetricDataResults": [{"Id": "m0", "Timestamps": ["x"], "Values": [1]}]}',
        b'{"MetricDataResults": [{"Id": "m0", "Timestamps": [1700000000], "Values": []}]}',
    ],
)
async def test_garbage_answers(fault_server: FaultServer, body: bytes) -> None:
    fault_server.answer(200, body)
    for query in (LogQuery(service="payment"), MetricQuery("cpu", "checkout")):
        with pytest.raises(BadBackendResponse) as caught:
            await ask(fault_server.url, query)
        assert describe(caught.value).startswith("CloudWatch: unreadable answer")


@pytest.mark.usefixtures("credentials")
async def test_recorded_answers_parse(fault_server: FaultServer) -> None:
    fault_server.answer(200, (FIXTURES / "logs_filter_log_events_response.json").read_bytes())
    text = await ask(fault_server.url, LogQuery(("ERROR",), range_s=3600 * 24 * 365 * 20))
    # The recorded answer carries a nextToken, so reading stops at the page cap: lines, no count.
    assert text.startswith('all services "ERROR": latest lines in the last 7300d, newest first:\n')
    assert "ago ERROR Event 3" in text.split("\n")[1]
    fault_server.answer(200, json.dumps({"MetricDataResults": [{
        "Id": "m0", "Label": "EstimatedCharges", "Timestamps": [1727352000], "Values": [542.38], "StatusCode": "Complete",
    }], "Messages": []}))  # fmt: skip
    assert await ask(fault_server.url, MetricQuery("cpu", "checkout")) == "checkout cpu: 542%"


@pytest.mark.usefixtures("credentials")
async def test_forbidden_datapoints_are_an_auth_failure(fault_server: FaultServer) -> None:
    fault_server.answer(
        200, b'{"MetricDataResults": [{"Id": "m0", "Timestamps": [], "Values": [], "StatusCode": "Forbidden"}]}'
    )
    with pytest.raises(BackendAuthError):
        await ask(fault_server.url, MetricQuery("cpu", "checkout"))
