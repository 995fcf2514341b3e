"""Alertmanager against a real Alertmanager 0.25 that the tests post alerts to, against its recorded
answers, and against a loopback server that misbehaves on purpose."""

from __future__ import annotations

import json
import time
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from monitors.alertmanager import Alertmanager, AlertmanagerConfig, format_alerts
from monitors.base import Alert, AlertList, AlertQuery, MetricQuery
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
from tests.monitors.servers_alertmanager import AlertmanagerServer, alertmanager
from tests.servers import FaultServer, refused_url

pytestmark = [pytest.mark.anyio, pytest.mark.servers]
FIXTURES = Path(__file__).parent.parent / "fixtures" / "alertmanager"
RECORDED_START = datetime(2026, 11, 21, 23, 18, 56, 221000, tzinfo=UTC).timestamp()
SILENCE_ID = "9113604b-a54f-4e72-8bcf-71d663d2cd34"
FOOTER = "Reply ack N or silence N 1h"
DISK_DB1 = {"alertname": "DiskFull", "instance": "db1:9100", "job": "node", "severity": "critical"}
DISK_DB2 = {"alertname": "DiskFull", "instance": "db2:9100", "severity": "warning"}
CPU = {"alertname": "HighCPU", "service": "checkout", "instance": "web1:8080"}


@pytest.fixture(scope="module")
def alertmanager_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AlertmanagerServer]:
    with alertmanager(tmp_path_factory.mktemp("alertmanager")) as server:
        yield server


@pytest.fixture
def am(alertmanager_server: AlertmanagerServer) -> Iterator[AlertmanagerServer]:
    """The module's Alertmanager, emptied after each test."""
    yield alertmanager_server
    alertmanager_server.clear()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with new_client() as client:
        yield client


def monitor(url: str, client: httpx.AsyncClient, timeout_s: float = 3.0) -> Alertmanager:
    return Alertmanager("alertmanager", AlertmanagerConfig(url=url, timeout_s=timeout_s), client)


async def listing(url: str, state: str | None = None, timeout_s: float = 3.0) -> tuple[AlertList, str]:
    async with new_client() as client:
        am = monitor(url, client, timeout_s)
        result = await am.query(AlertQuery(state))
        assert isinstance(result, AlertList)
        return result, am.format(result)


# --- a real Alertmanager ----------------------------------------------------------------------


async def test_health(am: AlertmanagerServer, client: httpx.AsyncClient) -> None:
    health = await monitor(am.url, client).health()
    assert health.ok and health.detail == "ready"


async def test_nothing_firing(am: AlertmanagerServer) -> None:
    assert (await listing(am.url))[1] == "No alerts firing."
    assert (await listing(am.url, "silenced"))[1] == "No alerts silenced."
    assert (await listing(am.url, "all"))[1] == "No alerts firing or silenced."


async def test_the_list_is_numbered_by_name_then_oldest_first(am: AlertmanagerServer) -> None:
    am.fire(CPU, ago_s=12 * 60 + 30)
    am.fire(DISK_DB2, ago_s=3600 + 30)
    am.fire(DISK_DB1, ago_s=3 * 3600 + 30)
    result, text = await listing(am.url)
    assert [dict(a.labels) for a in result.alerts] == [DISK_DB1, DISK_DB2, CPU]
    assert all(a.state == "firing" and len(a.fingerprint) == 16 for a in result.alerts)
    assert text == f"3 firing:\n1) DiskFull db1 node 3h\n2) DiskFull db2 1h\n3) HighCPU checkout web1 12m\n{FOOTER}"
    # The same alerts in the same order on every asking: numbers survive between "alerts" and "ack 2".
    assert (await listing(am.url))[0].alerts == result.alerts


async def test_one_alert_shows_its_summary(am: AlertmanagerServer) -> None:
    am.fire(DISK_DB1, ago_s=330, summary="Disk /var is 97% full on db1")
    result, text = await listing(am.url)
    assert result.alerts[0].summary == "Disk /var is 97% full on db1"
    assert text == f"1 firing:\n1) DiskFull db1 node 5m: Disk /var is 97% full on db1\n{FOOTER}"


async def test_a_silence_from_all_labels_mutes_that_alert_until_expired(
    am: AlertmanagerServer, client: httpx.AsyncClient
) -> None:
    am.fire(DISK_DB1, ago_s=600)
    am.fire(DISK_DB2, ago_s=300)
    backend = monitor(am.url, client)
    before = await backend.query(AlertQuery())
    assert isinstance(before, AlertList)
    target = before.alerts[0]

    silence_id = await backend.create_silence(target, 3600, "+15550001111", "ack from SMS")
    silences = {s["id"]: s for s in await backend.silences()}
    made = silences[silence_id]
    assert {(m["name"], m["value"]) for m in made["matchers"]} == set(DISK_DB1.items())
    assert all(m["isEqual"] is True and m["isRegex"] is False for m in made["matchers"])
    assert (made["createdBy"], made["comment"], made["status"]["state"]) == ("+15550001111", "ack from SMS", "active")
    ends = datetime.fromisoformat(made["endsAt"]).timestamp()
    assert abs(ends - (time.time() + 3600)) < 30

    firing, text = await listing(am.url)
    assert [dict(a.labels) for a in firing.alerts] == [DISK_DB2]  # its sibling keeps firing
    assert text.startswith("1 firing:\n1) DiskFull db2 5m")
    silenced, text = await listing(am.url, "silenced")
    assert [(a.fingerprint, a.state) for a in silenced.alerts] == [(target.fingerprint, "silenced")]
    assert text == "1 silenced:\n1) DiskFull db1 node 10m"
    both, text = await listing(am.url, "all")
    assert [a.state for a in both.alerts] == ["silenced", "firing"]
    assert text == f"2 alerts (1 silenced):\n1) DiskFull db1 node 10m silenced\n2) DiskFull db2 5m\n{FOOTER}"

    await backend.expire_silence(silence_id)
    assert {s["id"]: s for s in await backend.silences()}[silence_id]["status"]["state"] == "expired"
    after, _ = await listing(am.url)
    assert [(a.fingerprint, a.state) for a in after.alerts] == [
        (target.fingerprint, "firing"),
        (before.alerts[1].fingerprint, "firing"),
    ]
    await backend.expire_silence(silence_id)  # again: already over, and that is fine


async def test_expiring_an_unknown_silence_says_so(am: AlertmanagerServer, client: httpx.AsyncClient) -> None:
    with pytest.raises(BackendQueryError) as caught:
        await monitor(am.url, client).expire_silence("00000000-0000-4000-8000-000000000000")
    assert describe(caught.value) == "Alertmanager: query rejected: silence not found"


async def test_many_alerts_are_counted_not_listed(am: AlertmanagerServer) -> None:
    for n in range(12):
        am.fire({"alertname": "TargetDown", "instance": f"node{n:02d}:9100", "job": "node"}, ago_s=600 - n)
    result, text = await listing(am.url)
    assert len(result.alerts) == 12
    lines = text.split("\n")
    assert lines[0] == "12 firing:"
    assert lines[1] == "1) TargetDown node00 node 10m"
    assert lines[-2] == f"+{12 - (len(lines) - 3)} more" and lines[-1] == FOOTER
    assert 3 <= len(lines) - 3 <= 8 and len(text) <= 300


async def test_hostile_label_values_stay_one_safe_line_each(am: AlertmanagerServer) -> None:
    evil = "web\nSTOP\r\x07\x1b[2J" + "x" * 500
    am.fire({"alertname": "Evil\nName", "service": evil, "instance": "https://attacker.example/reset?token=s3cret"}, 60)
    am.fire(
        {"alertname": "Unicode", "service": "caf\u00e9 \u2615", "job": "j" * 500}, 30, summary="\u26a0 " + "y" * 500
    )
    am.fire({"alertname": "Plain", "instance": "db9:9100"}, 10)
    _, text = await listing(am.url)
    lines = text.split("\n")
    assert len(lines) == 5 and lines[0] == "3 firing:" and lines[-1] == FOOTER
    for line in lines:
        assert line.isascii() and line.isprintable() and len(line) < 100, line
    assert "://" not in text and "s3cret" not in text
    assert lines[1].startswith("1) Evil Name web STOP") and lines[1].endswith("attacker.example 1m")
    assert lines[3] == "3) Unicode caf? ? jjjjjjjjjjjjjjjjjjjjj... 30s"


async def test_an_unknown_state_is_refused(am: AlertmanagerServer) -> None:
    with pytest.raises(BackendQueryError) as caught:
        await listing(am.url, "pending")
    assert describe(caught.value) == "Alertmanager: query rejected: state must be one of firing, silenced, all"


async def test_build_through_the_registry(am: AlertmanagerServer, client: httpx.AsyncClient) -> None:
    registry = build_monitors({"alerts_eu": {"type": "alertmanager", "url": am.url}}, BuildContext(client))
    built = registry.get("alerts_eu")
    assert built is not None and built.display == "Alertmanager" and built.system == "alertmanager"
    assert (await built.health()).ok
    with pytest.raises(MonitorConfigError, match="invalid timeout_s"):
        build_monitors({"alertmanager": {"url": am.url, "timeout_s": 0}}, BuildContext(client))


# --- recorded answers -------------------------------------------------------------------------


async def test_the_recorded_listing_parses(fault_server: FaultServer) -> None:
    fault_server.answer(200, (FIXTURES / "api_v2_alerts_get.json").read_bytes())
    result, _ = await listing(fault_server.url)
    assert result.alerts == (
        Alert(
            name="DiskFull",
            labels={"alertname": "DiskFull", "instance": "db1:9100", "job": "node", "severity": "critical"},
            state="firing",
            starts_at=RECORDED_START,
            summary="Disk /var is 97% full on db1",
            fingerprint="1751650d45bf7d6b",
            source="alertmanager",
        ),
    )
    text = format_alerts(result, RECORDED_START + 3 * 3600 + 5)
    assert text == f"1 firing:\n1) DiskFull db1 node 3h: Disk /var is 97% full on db1\n{FOOTER}"
    assert fault_server.behaviour.seen == ["/api/v2/alerts?active=true&silenced=false&inhibited=false"]


@pytest.mark.parametrize(
    ("state", "params"),
    [
        ("silenced", "active=false&silenced=true&inhibited=false"),
        ("all", "active=true&silenced=true&inhibited=false"),
    ],
)
async def test_the_recorded_silenced_alert(fault_server: FaultServer, state: str, params: str) -> None:
    fault_server.answer(200, (FIXTURES / "api_v2_alerts_get_silenced.json").read_bytes())
    result, _ = await listing(fault_server.url, state)
    assert [(a.name, a.state) for a in result.alerts] == [("DiskFull", "silenced")]
    assert fault_server.behaviour.seen == [f"/api/v2/alerts?{params}"]
    text = format_alerts(result, RECORDED_START + 60)
    assert "Reply ack" not in text and "silenced" in text


async def test_the_recorded_silence_answer(fault_server: FaultServer, client: httpx.AsyncClient) -> None:
    fault_server.answer(200, (FIXTURES / "api_v2_silences_post_response.json").read_bytes())
    alert = Alert("DiskFull", {"alertname": "DiskFull"}, "firing")
    assert await monitor(fault_server.url, client).create_silence(alert, 7200, "sms-bot", "x") == SILENCE_ID
    assert fault_server.behaviour.seen == ["/api/v2/silences"]


async def test_the_recorded_refusal_is_the_reason(fault_server: FaultServer, client: httpx.AsyncClient) -> None:
    fault_server.answer(400, (FIXTURES / "api_v2_silences_post_error_400.json").read_bytes())
    with pytest.raises(BackendQueryError) as caught:
        await monitor(fault_server.url, client).create_silence(Alert("A", {"alertname": "A"}, "firing"), 60, "b", "c")
    assert (
        describe(caught.value)
        == "Alertmanager: query rejected: Failed to create silence: start time must be before end time"
    )


async def test_a_refusal_naming_a_host_is_scrubbed(fault_server: FaultServer, client: httpx.AsyncClient) -> None:
    fault_server.answer(422, json.dumps({"code": 601, "message": "cannot reach http://10.1.2.3:9093/x\nsecret"}))
    with pytest.raises(BackendQueryError) as caught:
        await monitor(fault_server.url, client).create_silence(Alert("A", {"alertname": "A"}, "firing"), 60, "b", "c")
    assert describe(caught.value) == "Alertmanager: query rejected: cannot reach <host> secret"


async def test_the_silence_request_matches_what_amtool_sends() -> None:
    sent: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        return httpx.Response(200, content=(FIXTURES / "api_v2_silences_post_response.json").read_bytes())

    recorded = json.loads((FIXTURES / "api_v2_silences_post_request.json").read_bytes())
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        alert = Alert("DiskFull", {"instance": "db1:9100", "alertname": "DiskFull"}, "firing")
        await monitor("http://am.test", client).create_silence(alert, 7200, "sms-bot", "Silenced via SMS by on-call")
    body = sent[0]
    assert body.keys() == recorded.keys()
    assert body["matchers"] == recorded["matchers"]
    assert (body["createdBy"], body["comment"]) == (recorded["createdBy"], recorded["comment"])
    starts, ends = (datetime.fromisoformat(body[k]).timestamp() for k in ("startsAt", "endsAt"))
    assert ends - starts == pytest.approx(7200, abs=0.002) and abs(starts - time.time()) < 5


# --- refusals made before any request ------------------------------------------------------


@pytest.mark.parametrize(
    "silence_id",
    [
        "nonsense",
        "../../-/reload",
        "9113604b-a54f-4e72-8bcf-71d663d2cd34/../x",
        "9113604b-a54f-4e72-8bcf-71d663d2cd3",
        "",
    ],
)
async def test_expire_refuses_what_is_not_a_silence_id(
    fault_server: FaultServer, client: httpx.AsyncClient, silence_id: str
) -> None:
    with pytest.raises(BackendQueryError) as caught:
        await monitor(fault_server.url, client).expire_silence(silence_id)
    assert describe(caught.value) == "Alertmanager: query rejected: not a silence id"
    assert fault_server.behaviour.seen == []


@pytest.mark.parametrize(
    ("alert", "seconds", "text"),
    [
        (Alert("A", {}, "firing"), 60, "alert has no labels to match"),
        (Alert("A", {"alertname": "A"}, "firing"), 0, "silence duration out of range"),
        (Alert("A", {"alertname": "A"}, "firing"), -60, "silence duration out of range"),
        (Alert("A", {"alertname": "A"}, "firing"), 400 * 86400, "silence duration out of range"),
    ],
)
async def test_silences_that_cannot_be_made(
    fault_server: FaultServer, client: httpx.AsyncClient, alert: Alert, seconds: int, text: str
) -> None:
    with pytest.raises(BackendQueryError) as caught:
        await monitor(fault_server.url, client).create_silence(alert, seconds, "b", "c")
    assert describe(caught.value) == f"Alertmanager: query rejected: {text}"
    assert fault_server.behaviour.seen == []


async def test_only_alert_questions(fault_server: FaultServer, client: httpx.AsyncClient) -> None:
    with pytest.raises(BackendQueryError):
        await monitor(fault_server.url, client).query(MetricQuery("cpu"))


# --- faults, on a loopback server that misbehaves --------------------------------------------


async def test_a_hung_backend_times_out_on_time(fault_server: FaultServer) -> None:
    fault_server.hang()
    started = time.monotonic()
    with pytest.raises(BackendTimeout) as caught:
        await listing(fault_server.url, timeout_s=0.5)
    assert time.monotonic() - started < 1.5
    assert describe(caught.value) == "Alertmanager: timed out after 0.5 s"


async def test_the_guard_enforces_the_deadline_too(fault_server: FaultServer, client: httpx.AsyncClient) -> None:
    fault_server.hang()
    guarded = Guarded(monitor(fault_server.url, client, 0.5))
    started = time.monotonic()
    with pytest.raises(BackendTimeout):
        await guarded.query(AlertQuery())
    assert time.monotonic() - started < 1.5


async def test_not_ready_is_unhealthy(fault_server: FaultServer, client: httpx.AsyncClient) -> None:
    fault_server.answer(503, b"Service Unavailable", content_type="text/plain")
    health = await monitor(fault_server.url, client).health()
    assert (health.ok, health.detail) == (False, "not ready")


@pytest.mark.parametrize(
    ("status", "error", "text"),
    [
        (500, BackendError, "Alertmanager: failed (HTTP 500)"),
        (503, BackendUnavailable, "Alertmanager: unreachable (HTTP 503)"),
        (401, BackendAuthError, "Alertmanager: access denied (HTTP 401), check credentials"),
        (403, BackendAuthError, "Alertmanager: access denied (HTTP 403), check credentials"),
    ],
)
async def test_http_errors(
    fault_server: FaultServer, client: httpx.AsyncClient, status: int, error: type[BackendError], text: str
) -> None:
    fault_server.answer(status, b"secret-internal-detail")
    backend = monitor(fault_server.url, client)
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


async def test_health_errors_are_errors(fault_server: FaultServer, client: httpx.AsyncClient) -> None:
    fault_server.answer(500, b"boom")
    with pytest.raises(BackendError) as caught:
        await monitor(fault_server.url, client).health()
    assert describe(caught.value) == "Alertmanager: failed (HTTP 500)"


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"<html>proxy error</html>", id="html"),
        pytest.param(b'[{"labels": {"alertname": "A"}', id="truncated"),
        pytest.param(b'{"alerts": []}', id="object"),
        pytest.param(b"[1]", id="not-an-alert"),
        pytest.param(b'[{"status": {"state": "active"}}]', id="no-labels"),
        pytest.param(b'[{"labels": "A", "status": {}}]', id="labels-not-object"),
        pytest.param(b'[{"labels": {"alertname": 1}, "status": {}}]', id="label-not-string"),
        pytest.param(b'[{"labels": {"alertname": "A"}}]', id="no-status"),
        pytest.param(b'[{"labels": {"alertname": "A"}, "status": {}, "startsAt": "yesterday"}]', id="bad-time"),
        pytest.param(b'[{"labels": {"alertname": "A"}, "status": {}, "annotations": []}]', id="annotations-list"),
    ],
)
async def test_garbage_answers(fault_server: FaultServer, body: bytes) -> None:
    fault_server.answer(200, body)
    with pytest.raises(BadBackendResponse) as caught:
        await listing(fault_server.url)
    assert describe(caught.value).startswith("Alertmanager: unreadable answer")


@pytest.mark.parametrize("body", [b'{"id": "x"}', b'{"silenceID": 7}', b'{"silenceID": "../x"}', b"[]", b"nope"])
async def test_garbage_silence_answers(fault_server: FaultServer, client: httpx.AsyncClient, body: bytes) -> None:
    fault_server.answer(200, body)
    with pytest.raises(BadBackendResponse):
        await monitor(fault_server.url, client).create_silence(Alert("A", {"alertname": "A"}, "firing"), 60, "b", "c")


async def test_connection_refused(client: httpx.AsyncClient) -> None:
    url = refused_url()
    with pytest.raises(BackendUnavailable) as caught:
        await listing(url)
    assert describe(caught.value) == "Alertmanager: unreachable (cannot connect)"
    with pytest.raises(BackendUnavailable):
        await monitor(url, client).health()


async def test_a_huge_answer_is_refused_with_bounded_memory(fault_server: FaultServer) -> None:
    fault_server.answer(200, b"", endless=True)
    tracemalloc.start()
    try:
        with pytest.raises(BadBackendResponse) as caught:
            await listing(fault_server.url, timeout_s=10)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert describe(caught.value) == "Alertmanager: unreadable answer (answer too large)"
    assert peak < 16 * 2**20


async def test_hostile_values_in_a_recorded_shape(fault_server: FaultServer) -> None:
    alerts = json.loads((FIXTURES / "api_v2_alerts_get.json").read_bytes())
    alerts[0]["labels"] = {
        "alertname": "Disk\r\nFull\x00",
        "instance": "http://10.0.0.1:9100/metrics?k=v\n" + "z" * 500,
    }
    alerts[0]["annotations"] = {"description": "line one\nline two\x07" + "w" * 500}
    fault_server.answer(200, json.dumps(alerts))
    result, _ = await listing(fault_server.url)
    text = format_alerts(result, RECORDED_START + 90)
    assert text.split("\n") == ["1 firing:", f"1) Disk Full 10.0.0.1 1m: line one line two {'w' * 39}...", FOOTER]
