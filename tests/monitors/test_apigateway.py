"""API Gateway against moto in server mode (REST APIs, resources and stages created for real, read
over HTTP through boto3), and against a loopback server that misbehaves on purpose."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from monitors.apigateway import ApiGateway, ApiGatewayConfig
from monitors.base import GatewayQuery, Kind, MetricQuery
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
from monitors.registry import BuildContext, build_monitors
from monitors.resilience import Guarded
from tests.monitors.servers_aws import REGION, MotoServer, fake_credentials, moto_server, without_credentials
from tests.servers import FaultServer, refused_url

pytestmark = [pytest.mark.anyio, pytest.mark.servers]
HANG_S = 3.0
"""How long a hung server keeps a request: past every deadline tested, short enough that its late
answer to a closed socket lands while the session is still running."""


@pytest.fixture(scope="module")
def aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    with moto_server(tmp_path_factory.mktemp("aws")) as server:
        server.rest_api("orders", paths=["orders", "health"], stages=["prod", "dev"])
        server.rest_api("payments", paths=["charge"])
        yield server


def monitor(url: str, timeout_s: float = 3.0) -> ApiGateway:
    return ApiGateway("apigateway", ApiGatewayConfig(region=REGION, endpoint_url=url, timeout_s=timeout_s))


async def ask(url: str, endpoint: str | None = None, timeout_s: float = 3.0) -> str:
    gateway = monitor(url, timeout_s)
    return gateway.format(await gateway.query(GatewayQuery(endpoint)))


async def test_the_overview_counts_and_names_the_apis(aws: MotoServer) -> None:
    assert await ask(aws.url) == "API Gateway: 2 REST APIs: orders, payments"
    assert await ask(aws.url, "status") == "API Gateway: 2 REST APIs: orders, payments"


async def test_one_api_by_name_has_its_stages_and_paths(aws: MotoServer) -> None:
    text = await ask(aws.url, "Orders")
    # moto leaves out the stages' dates (AWS sends them; see the recorded-shape test below).
    assert re.fullmatch(
        r"orders: stages prod( \(\w+ ago\))?, dev( \(\w+ ago\))?; 3 resources: /, /health, /orders", text
    )


async def test_an_api_without_stages(aws: MotoServer) -> None:
    assert await ask(aws.url, "payments") == "payments: no stages deployed; 2 resources: /, /charge"


async def test_an_unknown_api_names_those_there_are(aws: MotoServer) -> None:
    assert await ask(aws.url, "billing") == "API Gateway: no REST API named billing; have orders, payments"


async def test_hostile_names_stay_one_short_safe_line(aws: MotoServer) -> None:
    aws.rest_api("evil\n\x07" + "e" * 5000)
    text = await ask(aws.url, 'x"\r\n\x1b[2J' + "y" * 5000)
    assert "\n" not in text and "\r" not in text and "\x1b" not in text and "\x07" not in text
    assert len(text) < 200
    overview = await ask(aws.url)
    assert overview.startswith("API Gateway: 3 REST APIs: orders, payments, evil ")
    assert "\x07" not in overview and len(overview) < 200


async def test_health(aws: MotoServer) -> None:
    health = await monitor(aws.url).health()
    assert health.ok and health.detail == "reachable"


async def test_only_gateway_questions(aws: MotoServer) -> None:
    with pytest.raises(BackendQueryError):
        await monitor(aws.url).query(MetricQuery("cpu"))


async def test_no_credentials_in_the_chain(aws: MotoServer, tmp_path: Path) -> None:
    with without_credentials(tmp_path), pytest.raises(BackendAuthError) as caught:
        await monitor(aws.url).health()
    assert describe(caught.value) == "API Gateway: credentials not set (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)"


async def test_built_through_the_registry() -> None:
    async with new_client() as client:
        registry = build_monitors({"apigateway": {"region": "us-east-1"}}, BuildContext(client), guard=False)
    gateway = registry.get("apigateway")
    assert gateway is not None and gateway.kinds == frozenset({Kind.GATEWAY})
    assert registry.for_system("gateway") == [gateway]
    with pytest.raises(ValidationError):
        ApiGatewayConfig(region="us-east-1", access_key="x")  # type: ignore[call-arg]


# --- faults, on a loopback server that misbehaves --------------------------------------------


@pytest.fixture
def credentials(tmp_path: Path) -> Iterator[None]:
    with fake_credentials(tmp_path):
        yield


@pytest.mark.usefixtures("credentials")
async def test_a_hung_endpoint_times_out_on_time(fault_server: FaultServer) -> None:
    fault_server.hang(HANG_S)
    started = time.monotonic()
    with pytest.raises(BackendTimeout) as caught:
        await ask(fault_server.url, timeout_s=0.5)
    assert time.monotonic() - started < 1.5
    assert describe(caught.value) == "API Gateway: timed out after 0.5 s"
    guarded = Guarded(monitor(fault_server.url, 0.5))
    started = time.monotonic()
    with pytest.raises(BackendTimeout):
        await guarded.health()
    assert time.monotonic() - started < 1.5


@pytest.mark.usefixtures("credentials")
async def test_connection_refused() -> None:
    with pytest.raises(BackendUnavailable) as caught:
        await monitor(refused_url()).health()
    assert describe(caught.value) == "API Gateway: unreachable (cannot connect)"


@pytest.mark.usefixtures("credentials")
@pytest.mark.parametrize(
    ("status", "body", "error", "text"),
    [
        (500, b"secret-internal-detail", BackendError, "API Gateway: failed (HTTP 500)"),
        (503, b"secret-internal-detail", BackendUnavailable, "API Gateway: unreachable (HTTP 503)"),
        (
            403,
            b'{"message": "The security token included in the request is invalid."}',
            BackendAuthError,
            "API Gateway: access denied (HTTP 403), check credentials",
        ),
        (429, b'{"message": "Too Many Requests"}', BackendUnavailable, "API Gateway: unreachable (throttled)"),
        (
            404,
            b'{"message": "Invalid API identifier specified 123456789012:abc"}',
            BackendQueryError,
            "API Gateway: query rejected: HTTP 404",
        ),
    ],
)
async def test_error_answers(fault_server: FaultServer, status: int, body: bytes, error: type, text: str) -> None:
    fault_server.answer(status, body)
    with pytest.raises(error) as caught:
        await ask(fault_server.url)
    assert describe(caught.value) == text


@pytest.mark.usefixtures("credentials")
@pytest.mark.parametrize("body", [b"<html>proxy error</html>", b"[]", b"\xff\xfe", b'{"item": 3}', b'{"item": [1, 2]}'])
async def test_garbage_answers(fault_server: FaultServer, body: bytes) -> None:
    fault_server.answer(200, body)
    with pytest.raises(BadBackendResponse) as caught:
        await ask(fault_server.url)
    assert describe(caught.value) == "API Gateway: unreadable answer (not an AWS answer)"


@pytest.mark.usefixtures("credentials")
async def test_the_wire_shape_with_dates(fault_server: FaultServer) -> None:
    """One body serves the three calls (GetRestApis, GetStages, GetResources all answer `item`)."""
    two_hours_ago = int(time.time()) - 7200
    fault_server.answer(200, json.dumps({"item": [
        {"id": "a1b2c3", "name": "orders", "stageName": "prod", "createdDate": two_hours_ago,
         "lastUpdatedDate": two_hours_ago, "path": "/orders"},
    ]}))  # fmt: skip
    assert await ask(fault_server.url, "orders") == "orders: stage prod (2h ago); 1 resource: /orders"
    assert await ask(fault_server.url) == "API Gateway: 1 REST API: orders"
    fault_server.answer(200, json.dumps({"item": [], "position": "next"}))
    assert await ask(fault_server.url) == "API Gateway: no REST APIs in this region"
