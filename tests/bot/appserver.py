"""The whole bot served by uvicorn on loopback inside the test's event loop, and signed Twilio requests."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import httpx
import respx
import uvicorn
from fastapi import FastAPI
from twilio.request_validator import RequestValidator

from bot.db.history import HistoryEntry
from bot.settings import Settings, load_settings
from bot.web.app import create_app
from bot.web.webhook import Webhook
from tests.servers import free_port

TOKEN = "f2d3c4b5a6978877665544332211aabb"
PUBLIC_URL = "https://ops.example.com"
"""What Twilio calls (a proxy in front); the app itself listens on loopback."""
ALICE = "+15551230001"  # operator
BOB = "+15551230002"  # viewer
STRANGER = "+15559990000"
USERS = f'users: {{"{ALICE}": {{name: alice, role: operator}}, "{BOB}": {{name: bob, role: viewer}}}}\n'


def settings_for(tmp: Path, config: str = "", **environ: str) -> Settings:
    path = tmp / "operator.yaml"
    path.write_text(f"public_url: {PUBLIC_URL}\n{USERS}history_path: {tmp / 'history.sqlite3'}\n{config}", "utf-8")
    env = {"TWILIO_AUTH_TOKEN": TOKEN, "TWILIO_ACCOUNT_SID": "AC" + "0" * 32, "TWILIO_FROM_NUMBER": "+15550001111"}
    return load_settings(path, environ={**env, **environ}, env_file=None)


def sign(params: Sequence[tuple[str, str]] | Mapping[str, str], path: str = "/sms", token: str = TOKEN) -> str:
    pairs = list(params.items()) if isinstance(params, Mapping) else list(params)
    from starlette.datastructures import ImmutableMultiDict

    return str(RequestValidator(token).compute_signature(f"{PUBLIC_URL}{path}", ImmutableMultiDict(pairs)))


@dataclass
class Running:
    url: str
    app: FastAPI
    client: httpx.AsyncClient

    @property
    def webhook(self) -> Webhook:
        webhook: Webhook = self.app.state.webhook
        return webhook

    async def entries(self, limit: int = 20) -> list[HistoryEntry]:
        """The audit history once everything queued is stored."""
        await self.webhook.drain()
        return await self.webhook.history.recent(limit)

    async def text(self, body: str, number: str = ALICE, sid: str | None = None, signed: bool = True,
                   extra: Mapping[str, str] | None = None) -> httpx.Response:  # fmt: skip
        params = {"MessageSid": sid or f"SM{abs(hash((body, number, asyncio.get_running_loop().time()))):032x}"[:34],
                  "AccountSid": "AC" + "0" * 32, "From": number, "To": "+15550001111", "Body": body,
                  "NumMedia": "0", **(extra or {})}  # fmt: skip
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if signed:
            headers["X-Twilio-Signature"] = sign(params)
        return await self.client.post(f"{self.url}/sms", content=urlencode(params), headers=headers)


def message_of(response: httpx.Response) -> str:
    """The text of a TwiML reply ("" for an empty <Response/>), written plain or as a <Body> beside <Media>."""
    import xml.etree.ElementTree as ElementTree

    root = ElementTree.fromstring(response.text)
    return "".join((m.text or "") + (m.findtext("Body") or "") for m in root.iter("Message"))


@contextlib.asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[Running]:
    app = create_app(settings)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    task = asyncio.ensure_future(server.serve())
    try:
        for _ in range(400):
            if server.started:
                break
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        async with httpx.AsyncClient(trust_env=False, timeout=20) as client:
            yield Running(f"http://127.0.0.1:{port}", app, client)
    finally:
        server.should_exit = True
        await task


# --- Twilio's REST API, mocked (the only SaaS here); loopback passes through ---------------------------

TWILIO = "http://twilio.test"
"""TWILIO_API_BASE_URL for tests: outbound messages go here, to respx."""
SID = "AC" + "0" * 32


def mocked_twilio(mock: respx.MockRouter) -> respx.Route:
    mock.route(host="127.0.0.1").pass_through()
    return mock.post(f"{TWILIO}/2010-04-01/Accounts/{SID}/Messages.json").mock(
        return_value=httpx.Response(201, json={"sid": "SM" + "d" * 32, "status": "queued"})
    )


def bodies(route: respx.Route) -> list[dict[str, str]]:
    """The form fields of each message sent through the mocked API (To, Body, MediaUrl …)."""
    return [dict(httpx.QueryParams(call.request.content.decode())) for call in route.calls]


async def until(condition: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")
