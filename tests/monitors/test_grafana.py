"""Grafana's Alertmanager through its HTTP API: respx replays Grafana's documented and source-derived
answers and checks what is sent (path, token, silence body), and a loopback server misbehaves on
purpose for the faults.

No Grafana runs here (Debian does not ship one), so the payloads are Grafana's own docs and tests or
built from its source; tests/fixtures/SOURCES.md says which. The alert listing is Alertmanager's
recorded one, the shape Grafana serves on the same API."""

from __future__ import annotations

import json
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from bot.settings import ConfigError, load_settings
from intents import Catalog, Parser
from intents.models import Intent
from monitors.alertmanager import Alertmanager, format_alerts
from monitors.base import Alert, AlertList, AlertQuery, Health, Kind, MetricQuery
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
from monitors.grafana import API, Grafana, GrafanaConfig
from monitors.http import new_client
from monitors.registry import PRIORITY, BuildContext, MonitorConfigError, build_monitors
from monitors.resilience import Guarded
from tests.servers import FaultServer, refused_url

pytestmark = pytest.mark.anyio
FIXTURES = Path(__file__).parent.parent / "fixtures"
GRAFANA = FIXTURES / "grafana"
AM = FIXTURES / "alertmanager"
URL = "https://grafana.example.test"
TOKEN = "glsa_" + "k" * 32 + "_0123abcd"
SECRETS = {"grafana_token": TOKEN}
SILENCE_ID = "eafcacf6-632a-4244-809a-a3e4013262fc"
FOOTER = "Reply ack N or silence N 1h"
DISK = {"alertname": "DiskFull", "instance": "db1:9100", "job": "node", "severity": "critical"}


def monitor(client: httpx.AsyncClient, url: str = URL, secrets: dict[str, str] | None = None,
            timeout_s: float = 3.0) -> Grafana:  # fmt: skip
    return Grafana(
        "grafana", GrafanaConfig(url=url, timeout_s=timeout_s), client, SECRETS if secrets is None else secrets
    )


def fixture(path: Path, status: int = 200) -> httpx.Response:
    return httpx.Response(status, content=path.read_bytes(), headers={"content-type": "application/json"})


def grafana_listing() -> bytes:
    """Alertmanager's recorded listing with the labels Grafana-managed alerts carry."""
    alerts = json.loads((AM / "api_v2_alerts_get.json").read_bytes())
    alerts[0]["labels"] = {**alerts[0]["labels"], "__alert_rule_uid__": "dd2f0260", "grafana_folder": "device"}
    return json.dumps(alerts).encode()


def message(text: str, status: int) -> httpx.Response:
    """An error the way Grafana's API writes one."""
    return httpx.Response(status, json={"message": text})


# --- what is sent and what comes back ---------------------------------------------------------


async def test_health_is_grafanas_documented_health_check(respx_mock: respx.MockRouter) -> None:
    route = respx_mock.get(f"{URL}/api/health").mock(return_value=fixture(GRAFANA / "api_health_response.json"))
    async with new_client() as client:
        health = await monitor(client).health()
    assert (health.ok, health.detail) == (True, "ready")
    assert route.calls.last.request.headers["Authorization"] == f"Bearer {TOKEN}"


async def test_a_failing_database_is_unhealthy(respx_mock: respx.MockRouter) -> None:
    respx_mock.get(f"{URL}/api/health").mock(return_value=fixture(GRAFANA / "api_health_failing_503.json", 503))
    async with new_client() as client:
        health = await monitor(client).health()
    assert (health.ok, health.detail) == (False, "database failing")


async def test_the_alerts_listing_asks_grafanas_alertmanager(respx_mock: respx.MockRouter) -> None:
    route = respx_mock.get(f"{URL}{API}/alerts").mock(
        return_value=httpx.Response(200, content=grafana_listing(), headers={"content-type": "application/json"})
    )
    async with new_client() as client:
        grafana = monitor(client)
        result = await grafana.query(AlertQuery())
    request = route.calls.last.request
    assert request.url.path == "/api/alertmanager/grafana/api/v2/alerts"
    assert dict(request.url.params) == {"active": "true", "silenced": "false", "inhibited": "false"}
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert isinstance(result, AlertList)
    (alert,) = result.alerts
    assert (alert.name, alert.state, alert.fingerprint) == ("DiskFull", "firing", "1751650d45bf7d6b")
    assert alert.labels["__alert_rule_uid__"] == "dd2f0260"  # kept: a silence matches every label
    assert format_alerts(result, alert.starts_at + 3 * 3600 + 5) == (  # type: ignore[operator]
        f"1 firing:\n1) DiskFull db1 node 3h: Disk /var is 97% full on db1\n{FOOTER}"
    )


@pytest.mark.parametrize(("state", "params"), [("silenced", "active=false&silenced=true&inhibited=false"),
                                                ("all", "active=true&silenced=true&inhibited=false")])  # fmt: skip
async def test_other_states_ask_with_alertmanagers_filters(respx_mock: respx.MockRouter, state: str,
                                                           params: str) -> None:  # fmt: skip
    route = respx_mock.get(f"{URL}{API}/alerts").mock(return_value=fixture(AM / "api_v2_alerts_get_silenced.json"))
    async with new_client() as client:
        result = await monitor(client).query(AlertQuery(state))
    assert route.calls.last.request.url.query.decode() == params
    assert isinstance(result, AlertList) and [a.state for a in result.alerts] == ["silenced"]


async def test_a_silence_is_posted_as_grafana_takes_it_and_202_gives_its_id(respx_mock: respx.MockRouter) -> None:
    route = respx_mock.post(f"{URL}{API}/silences").mock(
        return_value=fixture(GRAFANA / "silences_post_response.json", 202)
    )
    async with new_client() as client:
        silence_id = await monitor(client).create_silence(Alert("DiskFull", DISK, "firing"), 3600, "alice", "on it")
    assert silence_id == SILENCE_ID
    request = route.calls.last.request
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    body = json.loads(request.content)
    recorded = json.loads((GRAFANA / "silences_post_request.json").read_bytes())
    assert body.keys() == recorded.keys()  # comment, createdBy, startsAt, endsAt, matchers
    assert body["matchers"] == [
        {"name": k, "value": v, "isEqual": True, "isRegex": False} for k, v in sorted(DISK.items())
    ]
    assert all(m.keys() >= recorded["matchers"][0].keys() for m in body["matchers"])
    assert (body["createdBy"], body["comment"]) == ("alice", "on it")
    starts, ends = (datetime.fromisoformat(body[k]).timestamp() for k in ("startsAt", "endsAt"))
    assert ends - starts == pytest.approx(3600, abs=0.002) and abs(starts - time.time()) < 5


async def test_a_200_is_taken_too(respx_mock: respx.MockRouter) -> None:
    respx_mock.post(f"{URL}{API}/silences").mock(return_value=fixture(GRAFANA / "silences_post_response.json"))
    async with new_client() as client:
        assert (
            await monitor(client).create_silence(Alert("A", {"alertname": "A"}, "firing"), 60, "b", "c") == SILENCE_ID
        )


async def test_a_refused_silence_gives_grafanas_reason(respx_mock: respx.MockRouter) -> None:
    respx_mock.post(f"{URL}{API}/silences").mock(
        return_value=message("start time must be before end time: unable to create silence", 400)
    )
    async with new_client() as client:
        with pytest.raises(BackendQueryError) as caught:
            await monitor(client).create_silence(Alert("A", {"alertname": "A"}, "firing"), 60, "b", "c")
    assert describe(caught.value) == (
        "Grafana: query rejected: start time must be before end time: unable to create silence"
    )


async def test_expiring_a_silence(respx_mock: respx.MockRouter) -> None:
    route = respx_mock.delete(f"{URL}{API}/silence/{SILENCE_ID}").mock(
        return_value=httpx.Response(200, json={"message": "silence deleted"})
    )
    async with new_client() as client:
        await monitor(client).expire_silence(SILENCE_ID)
    assert route.calls.last.request.headers["Authorization"] == f"Bearer {TOKEN}"


async def test_expiring_an_unknown_silence_says_so(respx_mock: respx.MockRouter) -> None:
    respx_mock.delete(f"{URL}{API}/silence/{SILENCE_ID}").mock(return_value=message("silence not found", 404))
    async with new_client() as client:
        with pytest.raises(BackendQueryError) as caught:
            await monitor(client).expire_silence(SILENCE_ID)
    assert describe(caught.value) == "Grafana: query rejected: silence not found"


async def test_expiring_an_expired_silence_is_not_an_error(respx_mock: respx.MockRouter) -> None:
    text = f"silence {SILENCE_ID} already expired: unable to delete silence due to an internal error"
    route = respx_mock.delete(f"{URL}{API}/silence/{SILENCE_ID}").mock(return_value=message(text, 500))
    async with new_client() as client:
        await monitor(client).expire_silence(SILENCE_ID)
    assert route.called


async def test_other_500s_on_expiry_are_failures(respx_mock: respx.MockRouter) -> None:
    respx_mock.delete(f"{URL}{API}/silence/{SILENCE_ID}").mock(
        return_value=message("unable to delete silence due to an internal error", 500)
    )
    async with new_client() as client:
        with pytest.raises(BackendError) as caught:
            await monitor(client).expire_silence(SILENCE_ID)
    assert describe(caught.value) == "Grafana: failed (HTTP 500)"


async def test_every_silence_grafana_keeps(respx_mock: respx.MockRouter) -> None:
    route = respx_mock.get(f"{URL}{API}/silences").mock(return_value=httpx.Response(200, json=[{"id": SILENCE_ID}]))
    async with new_client() as client:
        assert await monitor(client).silences() == [{"id": SILENCE_ID}]
    assert route.called


async def test_a_sub_path_url_keeps_its_path(respx_mock: respx.MockRouter) -> None:
    route = respx_mock.get(f"{URL}/grafana{API}/alerts").mock(return_value=httpx.Response(200, json=[]))
    async with new_client() as client:
        grafana = monitor(client, f"{URL}/grafana/")
        assert grafana.format(await grafana.query(AlertQuery())) == "No alerts firing."
    assert route.called


async def test_without_the_token_nothing_is_sent(respx_mock: respx.MockRouter) -> None:
    async with new_client() as client:
        grafana = monitor(client, secrets={})
        assert await grafana.health() == Health(False, "GRAFANA_TOKEN not set")
        calls: list[Callable[[], Awaitable[object]]] = [
            lambda: grafana.query(AlertQuery()),
            grafana.silences,
            lambda: grafana.expire_silence(SILENCE_ID),
            lambda: grafana.create_silence(Alert("A", {"alertname": "A"}, "firing"), 60, "b", "c"),
        ]
        for call in calls:
            with pytest.raises(CredentialsMissing) as caught:
                await call()
            assert describe(caught.value) == "Grafana: credentials not set (GRAFANA_TOKEN)"
    assert not respx_mock.calls


async def test_the_token_never_reaches_a_reply(respx_mock: respx.MockRouter) -> None:
    respx_mock.post(f"{URL}{API}/silences").mock(return_value=message(f"token {TOKEN} is invalid at {URL}/x", 400))
    async with new_client() as client:
        with pytest.raises(BackendQueryError) as caught:
            await monitor(client).create_silence(Alert("A", {"alertname": "A"}, "firing"), 60, "b", "c")
    text = describe(caught.value)
    assert text == "Grafana: query rejected: token <token> is invalid at <host>"


# --- registry, systems, settings -------------------------------------------------------------


async def test_built_through_the_registry_as_an_alert_writer(respx_mock: respx.MockRouter) -> None:
    respx_mock.post(f"{URL}{API}/silences").mock(return_value=fixture(GRAFANA / "silences_post_response.json", 202))
    async with new_client() as client:
        registry = build_monitors({"grafana": {"url": URL}}, BuildContext(client, secrets=SECRETS))
        built = registry.get("grafana")
        assert isinstance(built, Guarded) and isinstance(built.inner, Grafana) and built.writes_alerts
        assert (built.display, built.system, registry.type_of(built)) == ("Grafana", "grafana", "grafana")
        assert registry.for_kind(Kind.ALERTS) == [built] and registry.alert_writer() is built
        silence_id = await built.create_silence(Alert("A", {"alertname": "A"}, "firing"), 60, "b", "c")
        assert silence_id == SILENCE_ID
        assert registry.for_system("grafana") == [built]
        with pytest.raises(MonitorConfigError, match="invalid timeout_s"):
            build_monitors({"grafana": {"url": URL, "timeout_s": 0}}, BuildContext(client))
        with pytest.raises(MonitorConfigError, match=r"monitors\.grafana\.token: unknown"):
            build_monitors({"grafana": {"url": URL, "token": "x"}}, BuildContext(client))


async def test_with_alertmanager_too_each_alert_is_silenced_where_it_came_from() -> None:
    async with new_client() as client:
        registry = build_monitors({"grafana": {"url": URL}, "alertmanager": {"url": "http://am.test:9093"}},
                                  BuildContext(client, secrets=SECRETS))  # fmt: skip
        grafana, alertmanager = registry.get("grafana"), registry.get("alertmanager")
        assert PRIORITY[Kind.ALERTS] == ("alertmanager", "grafana")
        assert registry.for_kind(Kind.ALERTS) == [alertmanager, grafana]
        assert registry.alert_writer() is alertmanager
        assert registry.alert_writer("grafana") is grafana
        assert registry.alert_writer("alertmanager") is alertmanager
        assert registry.alert_writer("datadog") is alertmanager  # no writer of its own: the preferred one
        assert registry.alert_writers("grafana") == [grafana, alertmanager]
        assert registry.alert_writers() == [alertmanager, grafana]
        assert isinstance(alertmanager, Guarded) and type(alertmanager.inner) is Alertmanager


def test_health_grafana_names_the_system_configured_or_not() -> None:
    assert Catalog.from_config({}).systems["grafana"] == ("grafana",)
    configured = Catalog.from_config({"monitors": {"grafana": {"url": URL}}})
    assert configured.systems["grafana"] == ("grafana",)
    parse = Parser(configured).parse("health grafana")
    assert (parse.intent, parse.slots.get("system")) == (Intent.HEALTH, "grafana")


def test_the_token_comes_from_the_environment_only(tmp_path: Path) -> None:
    settings = load_settings(environ={"GRAFANA_TOKEN": TOKEN}, env_file=None)
    assert settings.secrets()["grafana_token"] == TOKEN and TOKEN not in repr(settings)
    config = tmp_path / "operator.yaml"
    config.write_text(f"grafana_token: {TOKEN}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(config, environ={}, env_file=None)
    assert TOKEN not in str(caught.value) and "grafana_token" in str(caught.value)


# --- faults, on a loopback server that misbehaves --------------------------------------------


async def listing(url: str, timeout_s: float = 3.0) -> tuple[AlertList, str]:
    async with new_client() as client:
        grafana = monitor(client, url, timeout_s=timeout_s)
        result = await grafana.query(AlertQuery())
        assert isinstance(result, AlertList)
        return result, grafana.format(result)


async def test_the_listing_path_on_a_real_socket(fault_server: FaultServer) -> None:
    fault_server.answer(200, grafana_listing())
    result, _ = await listing(fault_server.url)
    assert [a.name for a in result.alerts] == ["DiskFull"]
    assert fault_server.behaviour.seen == [f"{API}/alerts?active=true&silenced=false&inhibited=false"]


async def test_a_hung_backend_times_out_on_time(fault_server: FaultServer) -> None:
    fault_server.hang(3.0)
    started = time.monotonic()
    with pytest.raises(BackendTimeout) as caught:
        await listing(fault_server.url, timeout_s=0.5)
    assert time.monotonic() - started < 1.5
    assert describe(caught.value) == "Grafana: timed out after 0.5 s"


async def test_the_guard_enforces_the_deadline_too(fault_server: FaultServer) -> None:
    fault_server.hang(3.0)
    async with new_client() as client:
        guarded = Guarded(monitor(client, fault_server.url, timeout_s=0.5))
        started = time.monotonic()
        with pytest.raises(BackendTimeout):
            await guarded.create_silence(Alert("A", {"alertname": "A"}, "firing"), 60, "b", "c")
        assert time.monotonic() - started < 1.5


@pytest.mark.parametrize(
    ("status", "error", "text"),
    [
        (500, BackendError, "Grafana: failed (HTTP 500)"),
        (503, BackendUnavailable, "Grafana: unreachable (HTTP 503)"),
        (401, BackendAuthError, "Grafana: access denied (HTTP 401), check credentials"),
        (403, BackendAuthError, "Grafana: access denied (HTTP 403), check credentials"),
        (409, BackendError, "Grafana: failed (HTTP 409)"),  # Grafana's "Alertmanager not ready"
    ],
)
async def test_http_errors(fault_server: FaultServer, status: int, error: type[BackendError], text: str) -> None:
    fault_server.answer(status, b"secret-internal-detail")
    async with new_client() as client:
        backend = monitor(client, fault_server.url)
        calls: list[Callable[[], Awaitable[object]]] = [
            lambda: backend.query(AlertQuery()),
            backend.silences,
            lambda: backend.expire_silence(SILENCE_ID),
            lambda: backend.create_silence(Alert("A", {"alertname": "A"}, "firing"), 60, "b", "c"),
        ]
        for call in calls:
            with pytest.raises(error) as caught:
                await call()
            assert describe(caught.value) == text


@pytest.mark.parametrize(("status", "error"), [(500, BackendError), (401, BackendAuthError), (502, BackendUnavailable)])
async def test_health_errors_are_errors(fault_server: FaultServer, status: int, error: type[BackendError]) -> None:
    fault_server.answer(status, b"boom")
    async with new_client() as client:
        with pytest.raises(error):
            await monitor(client, fault_server.url).health()


@pytest.mark.parametrize("body", [b"<html>proxy</html>", b"[]", b'{"status": "ok"}', b'{"database": 1}'])
async def test_garbage_health_answers(fault_server: FaultServer, body: bytes) -> None:
    fault_server.answer(200, body)
    async with new_client() as client:
        with pytest.raises(BadBackendResponse) as caught:
            await monitor(client, fault_server.url).health()
    assert describe(caught.value).startswith("Grafana: unreadable answer")


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"<html>login</html>", id="html"),
        pytest.param(b'{"message": "ok"}', id="object"),
        pytest.param(b"[1]", id="not-an-alert"),
        pytest.param(b'[{"status": {"state": "active"}}]', id="no-labels"),
        pytest.param(b'[{"labels": {"alertname": 1}, "status": {}}]', id="label-not-string"),
        pytest.param(b'[{"labels": {"alertname": "A"}, "status": {}, "startsAt": "yesterday"}]', id="bad-time"),
    ],
)
async def test_garbage_answers(fault_server: FaultServer, body: bytes) -> None:
    fault_server.answer(200, body)
    with pytest.raises(BadBackendResponse) as caught:
        await listing(fault_server.url)
    assert describe(caught.value).startswith("Grafana: unreadable answer")


@pytest.mark.parametrize("body", [b'{"id": "x"}', b'{"silenceID": 7}', b'{"silenceID": "../x"}', b"[]", b"nope"])
async def test_garbage_silence_answers(fault_server: FaultServer, body: bytes) -> None:
    fault_server.answer(202, body)
    async with new_client() as client:
        with pytest.raises(BadBackendResponse):
            await monitor(client, fault_server.url).create_silence(
                Alert("A", {"alertname": "A"}, "firing"), 60, "b", "c"
            )


@pytest.mark.parametrize("silence_id", ["nonsense", "../../api/admin", f"{SILENCE_ID}/../x", ""])
async def test_expire_refuses_what_is_not_a_silence_id(fault_server: FaultServer, silence_id: str) -> None:
    async with new_client() as client:
        with pytest.raises(BackendQueryError) as caught:
            await monitor(client, fault_server.url).expire_silence(silence_id)
    assert describe(caught.value) == "Grafana: query rejected: not a silence id"
    assert fault_server.behaviour.seen == []


async def test_only_alert_questions(fault_server: FaultServer) -> None:
    async with new_client() as client:
        with pytest.raises(BackendQueryError):
            await monitor(client, fault_server.url).query(MetricQuery("cpu"))
    assert fault_server.behaviour.seen == []


async def test_connection_refused() -> None:
    url = refused_url()
    with pytest.raises(BackendUnavailable) as caught:
        await listing(url)
    assert describe(caught.value) == "Grafana: unreachable (cannot connect)"
    async with new_client() as client:
        with pytest.raises(BackendUnavailable):
            await monitor(client, url).health()


async def test_a_huge_answer_is_refused_with_bounded_memory(fault_server: FaultServer) -> None:
    fault_server.answer(200, b"", endless=True)
    tracemalloc.start()
    try:
        with pytest.raises(BadBackendResponse) as caught:
            await listing(fault_server.url, timeout_s=10)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert describe(caught.value) == "Grafana: unreadable answer (answer too large)"
    assert peak < 16 * 2**20


async def test_hostile_values_in_the_listing(fault_server: FaultServer) -> None:
    alerts: list[dict[str, Any]] = json.loads(grafana_listing())
    alerts[0]["labels"] = {"alertname": "Disk\r\nFull\x00", "instance": "http://10.0.0.1:9100/metrics?k=v\n" + "z" * 500,
                           "grafana_folder": "\u26a0 prod"}  # fmt: skip
    alerts[0]["annotations"] = {"summary": "see https://grafana.internal/d/abc?token=s3cret " + "w" * 500}
    fault_server.answer(200, json.dumps(alerts))
    result, _ = await listing(fault_server.url)
    text = format_alerts(result, (result.alerts[0].starts_at or 0) + 90)
    assert all(line.isascii() and line.isprintable() and len(line) < 100 for line in text.split("\n"))
    assert "://" not in text and "s3cret" not in text and "grafana.internal" not in text
    assert text.split("\n")[1].startswith("1) Disk Full 10.0.0.1 1m: see <host> www")
