"""The four alert webhooks over HTTP, on the whole app served by uvicorn: the shared token in each
sender's way (bearer, basic auth, custom header) and nothing else, bounded bodies (declared and
streamed), unreadable and wrong-shaped bodies, hostile values, and the routes in the OpenAPI schema.
Twilio's REST API is mocked with respx; loopback passes through."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from bot.alerting.sources import MAX_BODY_BYTES
from tests.bot.appserver import ALICE, BOB, TWILIO, Running, bodies, mocked_twilio, serve, settings_for

pytestmark = pytest.mark.anyio
FIXTURES = Path(__file__).parent.parent / "fixtures"
TOKEN = "hook-" + "z" * 27
HEADER = "X-Operator-Secret"
BODIES = {
    "alertmanager": (FIXTURES / "alertmanager" / "webhook_v4_firing.json").read_bytes(),
    "grafana": (FIXTURES / "grafana" / "webhook_firing.json").read_bytes(),
    "newrelic": (FIXTURES / "newrelic" / "workflow_webhook_payload.json").read_bytes(),
    "datadog": json.dumps(
        {
            "id": "7001",
            "date": "1763767200000",
            "title": "[Triggered] High error rate",
            "alert_id": "9001",
            "alert_transition": "Triggered",
            "alert_type": "error",
            "alert_scope": "service:checkout",
        }
    ).encode(),  # fmt: skip
}
BEARER = {"Authorization": f"Bearer {TOKEN}"}
IN_HEADER = {HEADER: TOKEN}
RIGHT: dict[str, list[dict[str, str]]] = {
    "alertmanager": [BEARER],
    "grafana": [BEARER],
    "datadog": [IN_HEADER],
    "newrelic": [IN_HEADER, BEARER],
}
WRONG: list[dict[str, str]] = [
    {},
    {"Authorization": "Bearer wrong"},
    {"Authorization": "Bearer"},
    {"Authorization": f"Bearer {TOKEN}x"},
    {"Authorization": f"Token {TOKEN}"},
    {"Authorization": TOKEN},
    {HEADER: "wrong"},
    {HEADER: ""},
    {"Authorization": "Basic " + base64.b64encode(f"ops:{TOKEN}".encode()).decode()},
    {"Authorization": "Basic !!!not-base64"},
]


def running(tmp_path: Path, mock: respx.MockRouter, **environ: str) -> Any:
    mocked_twilio(mock)
    return serve(settings_for(tmp_path, TWILIO_API_BASE_URL=TWILIO, **environ))


async def post(bot: Running, source: str, body: bytes | None = None, headers: dict[str, str] | None = None,
               **options: Any) -> httpx.Response:  # fmt: skip
    return await bot.client.post(f"{bot.url}/webhooks/{source}", content=BODIES[source] if body is None else body,
                                 headers={"Content-Type": "application/json", **(headers or {})}, **options)  # fmt: skip


async def test_each_webhook_takes_the_token_its_way_and_nothing_else(tmp_path: Path) -> None:
    with respx.mock(assert_all_called=False) as mock:
        async with running(tmp_path, mock, OPERATOR_WEBHOOK_TOKEN=TOKEN) as bot:
            for source, ways in RIGHT.items():
                for headers in WRONG + [w for s, ws in RIGHT.items() for w in ws if w not in ways]:
                    response = await post(bot, source, headers=headers)
                    assert response.status_code == 401, (source, headers)
                    assert response.headers["WWW-Authenticate"] == "Bearer" and response.content == b""
                for headers in ways:
                    assert (await post(bot, source, headers=headers)).status_code == 202, (source, headers)
            await bot.app.state.alerts.drain()


async def test_without_a_configured_token_every_webhook_is_closed(tmp_path: Path) -> None:
    with respx.mock(assert_all_called=False) as mock:
        twilio = mocked_twilio(mock)
        async with serve(settings_for(tmp_path, TWILIO_API_BASE_URL=TWILIO)) as bot:
            for source in BODIES:
                for headers in [{}, {"Authorization": "Bearer"}, {HEADER: ""}, {"Authorization": "Bearer None"}]:
                    assert (await post(bot, source, headers=headers)).status_code == 401
            await bot.app.state.alerts.drain()
        assert not twilio.called


async def test_grafana_may_use_basic_auth_when_it_is_configured(tmp_path: Path) -> None:
    def basic(user: str, password: str) -> dict[str, str]:
        return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}

    with respx.mock(assert_all_called=False) as mock:
        mocked_twilio(mock)
        settings = settings_for(tmp_path, "webhook_basic_user: grafana\n", TWILIO_API_BASE_URL=TWILIO,
                                OPERATOR_WEBHOOK_TOKEN=TOKEN, OPERATOR_WEBHOOK_PASSWORD="pass-" + "w" * 20)  # fmt: skip
        async with serve(settings) as bot:
            assert (await post(bot, "grafana", headers=basic("grafana", "pass-" + "w" * 20))).status_code == 202
            assert (await post(bot, "grafana", headers=basic("grafana", "wrong"))).status_code == 401
            assert (await post(bot, "grafana", headers=basic("admin", "pass-" + "w" * 20))).status_code == 401
            assert (await post(bot, "grafana", headers={"Authorization": "Basic ===="})).status_code == 401
            assert (await post(bot, "grafana", headers=BEARER)).status_code == 202  # the token still works
            await bot.app.state.alerts.drain()


async def stream(size: int) -> AsyncIterator[bytes]:
    chunk = b" " * 65536
    sent = 0
    while sent < size:
        yield chunk
        sent += len(chunk)


async def test_bodies_are_bounded_declared_or_streamed(tmp_path: Path) -> None:
    with respx.mock(assert_all_called=False) as mock:
        async with running(tmp_path, mock, OPERATOR_WEBHOOK_TOKEN=TOKEN) as bot:
            for source, ways in RIGHT.items():
                headers = ways[0]
                declared = await post(bot, source, b" " * (MAX_BODY_BYTES + 1), headers)  # Content-Length says so
                assert declared.status_code == 413, source
                streamed = await bot.client.post(f"{bot.url}/webhooks/{source}", content=stream(MAX_BODY_BYTES + 65536),
                                                 headers={"Content-Type": "application/json", **headers})  # fmt: skip
                assert streamed.status_code == 413, source  # chunked: no length declared, stopped at the bound
                assert (await post(bot, source, b" " * MAX_BODY_BYTES, headers)).status_code == 400  # at the bound
            await bot.app.state.alerts.drain()


BAD = [
    pytest.param(b"", "bad payload: body is not JSON", id="empty"),
    pytest.param(b"{", "bad payload: body is not JSON", id="cut-short"),
    pytest.param(b"\x00garbage\xff", "bad payload: body is not JSON", id="binary"),
    pytest.param(b"status=firing", "bad payload: body is not JSON", id="form"),
    pytest.param(b"[]", "bad payload: body is a JSON list, not an object", id="array"),
    pytest.param(b'"firing"', "bad payload: body is a JSON str, not an object", id="string"),
    pytest.param(b'{"a":' + b"[" * 50_000 + b"]" * 50_000 + b"}", None, id="deep"),
]


@pytest.mark.parametrize(("body", "answer"), BAD)
async def test_unreadable_bodies_are_a_400_with_a_short_reason(tmp_path: Path, body: bytes, answer: str | None) -> None:
    with respx.mock(assert_all_called=False) as mock:
        twilio = mocked_twilio(mock)
        async with serve(settings_for(tmp_path, TWILIO_API_BASE_URL=TWILIO, OPERATOR_WEBHOOK_TOKEN=TOKEN)) as bot:
            for source, ways in RIGHT.items():
                response = await post(bot, source, body, ways[0])
                assert response.status_code == 400, source
                assert response.headers["content-type"].startswith("text/plain")
                assert response.text.startswith("bad payload: ") and len(response.text) <= 100
                if answer is not None:
                    assert response.text == answer
            await bot.app.state.alerts.drain()
        assert not twilio.called


WRONG_SHAPES = {
    "grafana": [
        (b'{"version": "4", "status": "firing"}', "bad payload: unsupported Grafana payload version '4'"),
        (json.dumps({**json.loads(BODIES["grafana"]), "alerts": {}}).encode(),
         "bad payload: alerts is missing, empty or not a list"),
        (json.dumps({**json.loads(BODIES["grafana"]), "orgId": "one"}).encode(), "bad payload: orgId is not a number"),
    ],
    "newrelic": [
        (b'{"state": "ACTIVATED"}', "bad payload: New Relic payload has no issue id"),
        (json.dumps({**json.loads(BODIES["newrelic"]), "state": "OPEN"}).encode(),
         "bad payload: state is 'OPEN', not CREATED, ACTIVATED or CLOSED"),
        (json.dumps({**json.loads(BODIES["newrelic"]), "impactedEntities": {"a": 1}}).encode(),
         "bad payload: impactedEntities is not a list of text"),
    ],
    "alertmanager": [(BODIES["grafana"], "bad payload: unsupported Alertmanager payload version '1'")],
    "datadog": [(b'{"body": "x"}', "bad payload: Datadog payload has no title")],
}  # fmt: skip


async def test_wrong_shapes_are_refused_and_text_nobody(tmp_path: Path) -> None:
    with respx.mock(assert_all_called=False) as mock:
        twilio = mocked_twilio(mock)
        async with serve(settings_for(tmp_path, TWILIO_API_BASE_URL=TWILIO, OPERATOR_WEBHOOK_TOKEN=TOKEN)) as bot:
            for source, cases in WRONG_SHAPES.items():
                for body, answer in cases:
                    response = await post(bot, source, body, RIGHT[source][0])
                    assert (response.status_code, response.text) == (400, answer)
            await bot.app.state.alerts.drain()
        assert not twilio.called


async def test_hostile_values_through_the_webhooks_make_clean_texts(tmp_path: Path) -> None:
    grafana = json.loads(BODIES["grafana"])
    grafana["alerts"] = grafana["alerts"][:1]
    grafana["alerts"][0]["labels"] = {"alertname": "Evil\r\nSTOP\x07\x1b[2J" + "x" * 300, "severity": "critical",
                                      "instance": "https://grafana.internal:3000/d/x?token=s3cret\nFAKE"}  # fmt: skip
    grafana["alerts"][0]["annotations"] = {"summary": "\u26a0\ufe0f see [runbook](https://wiki.internal/rb) now " * 20}
    newrelic = {**json.loads(BODIES["newrelic"]), "id": "nr-evil-1", "title": "CPU\n\n> 90% https://one.newrelic.com/x",
                "alertConditionNames": ["\U0001f525 Hot\r\nHOST " + "h" * 400]}  # fmt: skip
    with respx.mock(assert_all_called=False) as mock:
        twilio = mocked_twilio(mock)
        async with serve(settings_for(tmp_path, TWILIO_API_BASE_URL=TWILIO, OPERATOR_WEBHOOK_TOKEN=TOKEN)) as bot:
            assert (await post(bot, "grafana", json.dumps(grafana).encode(), BEARER)).status_code == 202
            assert (await post(bot, "newrelic", json.dumps(newrelic).encode(), IN_HEADER)).status_code == 202
            await bot.app.state.alerts.drain()
        sent = bodies(twilio)
    assert sorted(t["To"] for t in sent) == sorted([ALICE, BOB] * 2)
    for text in (t["Body"] for t in sent):
        assert text.isascii() and all(line.isprintable() for line in text.split("\n")), text
        assert "://" not in text and "s3cret" not in text and "wiki.internal" not in text and "newrelic.com" not in text
        assert len(text) <= 3 * 153


async def test_a_new_relic_issue_pages_once_resolves_once_and_an_ack_texts_nobody(tmp_path: Path) -> None:
    activated = json.loads(BODIES["newrelic"])
    created = {**activated, "state": "CREATED", "trigger": "INCIDENT_ADDED"}
    acked = {**activated, "trigger": "ACKNOWLEDGED", "updatedAt": activated["updatedAt"] + 60_000}
    closed = {
        **activated,
        "state": "CLOSED",
        "trigger": "INCIDENT_CLOSED",
        "updatedAt": activated["updatedAt"] + 120_000,
    }
    with respx.mock(assert_all_called=False) as mock:
        twilio = mocked_twilio(mock)
        async with serve(settings_for(tmp_path, TWILIO_API_BASE_URL=TWILIO, OPERATOR_WEBHOOK_TOKEN=TOKEN)) as bot:
            for payload in (created, activated, activated, acked):
                assert (await post(bot, "newrelic", json.dumps(payload).encode(), IN_HEADER)).status_code == 202
                await bot.app.state.alerts.drain()
            paged = bodies(twilio)
            for _ in range(2):
                assert (await post(bot, "newrelic", json.dumps(closed).encode(), BEARER)).status_code == 202
                await bot.app.state.alerts.drain()
            entries = await bot.entries(limit=50)
        sent = bodies(twilio)
    assert sorted(t["To"] for t in paged) == [ALICE, BOB]  # CREATED, ACTIVATED, its retry and the ack: one page
    assert all(t["Body"].startswith("FIRING") and "Zulip Server Low Storage" in t["Body"] for t in paged)
    resolved = sent[len(paged) :]
    assert sorted(t["To"] for t in resolved) == [ALICE, BOB]  # the CLOSED and its retry: once
    assert all(t["Body"].startswith("RESOLVED") for t in resolved)
    received = [e for e in entries if e.intent == "alert" and e.direction == "in"]
    assert {e.source for e in received} == {"newrelic"} and {e.outcome for e in received} == {"firing", "resolved"}


async def test_the_routes_are_in_the_openapi_schema(tmp_path: Path) -> None:
    async with serve(settings_for(tmp_path)) as bot:
        schema = (await bot.client.get(f"{bot.url}/openapi.json")).json()
    for source in ("alertmanager", "grafana", "datadog", "newrelic"):
        route = schema["paths"][f"/webhooks/{source}"]["post"]
        assert "application/json" in route["requestBody"]["content"]
        assert {"202", "400", "401", "413"} <= set(route["responses"])
    assert "Grafana" in schema["paths"]["/webhooks/grafana"]["post"]["summary"]
    assert "New Relic" in schema["paths"]["/webhooks/newrelic"]["post"]["summary"]
