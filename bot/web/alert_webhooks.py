"""POST /webhooks/alertmanager, /webhooks/grafana, /webhooks/datadog and /webhooks/newrelic: alert
notifications in, texts out.

All four need the same shared secret (OPERATOR_WEBHOOK_TOKEN). Alertmanager and Grafana send it as a
bearer token (or basic auth, with `webhook_basic_user` and OPERATOR_WEBHOOK_PASSWORD): both have those
two settings on their webhook. Datadog sends it in a custom header (`datadog_webhook_header`,
X-Operator-Secret), and so may New Relic (a workflow's custom headers), whose webhook destinations can
also send it as a bearer token. The body is read with a bound (`MAX_BODY_BYTES`: past it, 413 without
reading more), parsed and checked before answering; texting happens after the answer, so a slow Twilio
never makes a sender time out and retry.
"""

from __future__ import annotations

import base64
import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from fastapi import Request, Response

from bot.alerting.model import Notification
from bot.alerting.notifier import Notifier
from bot.alerting.sources import (
    MAX_BODY_BYTES,
    BadPayload,
    parse_alertmanager,
    parse_datadog,
    parse_grafana,
    parse_newrelic,
)
from bot.settings import Settings
from bot.web.background import Background
from bot.web.body import bounded_body, hang_ups_answered

log = logging.getLogger(__name__)


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


@dataclass
class AlertWebhooks:
    settings: Settings
    notifier: Notifier
    background: Background = field(default_factory=Background)

    def _token(self) -> str | None:
        token = self.settings.webhook_token
        return token.get_secret_value() if token is not None and token.get_secret_value().strip() else None

    def _bearer_allowed(self, request: Request) -> bool:
        """The bearer token, or basic auth when a user and password are configured (Alertmanager, Grafana)."""
        header = request.headers.get("authorization", "")
        token = self._token()
        if token and header.lower().startswith("bearer "):
            return _same(header[7:].strip(), token)
        password = self.settings.webhook_password
        expected_user = self.settings.webhook_basic_user
        if expected_user and password is not None and header.lower().startswith("basic "):
            try:
                user, _, given = base64.b64decode(header[6:].strip(), validate=True).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return False
            return _same(user, expected_user) and _same(given, password.get_secret_value())
        return False

    def _header_allowed(self, request: Request) -> bool:
        """The token in the custom header (Datadog, New Relic)."""
        token = self._token()
        given = request.headers.get(self.settings.datadog_webhook_header, "")
        return token is not None and bool(given) and _same(given, token)

    async def alertmanager(self, request: Request) -> Response:
        return await self._receive(request, self._bearer_allowed(request), parse_alertmanager, "alertmanager")

    async def grafana(self, request: Request) -> Response:
        return await self._receive(request, self._bearer_allowed(request), parse_grafana, "grafana")

    async def datadog(self, request: Request) -> Response:
        return await self._receive(request, self._header_allowed(request), parse_datadog, "datadog")

    async def newrelic(self, request: Request) -> Response:
        allowed = self._header_allowed(request) or self._bearer_allowed(request)
        return await self._receive(request, allowed, parse_newrelic, "newrelic")

    @hang_ups_answered
    async def _receive(
        self, request: Request, allowed: bool, parse: Callable[[bytes], Notification], source: str
    ) -> Response:
        if not allowed:
            log.warning("refused a %s webhook without the right token", source)
            return Response(status_code=401, headers={"WWW-Authenticate": "Bearer"})
        body = await bounded_body(request, MAX_BODY_BYTES)
        if body is None:
            return Response(status_code=413)
        try:
            notification = parse(body)
        except BadPayload as exc:
            log.warning("refused a %s webhook: %s", source, exc)
            return Response(f"bad payload: {exc}", status_code=400, media_type="text/plain")
        if notification.alerts:  # an update that pages nobody (New Relic's ACKNOWLEDGED) is only accepted
            self.background.spawn(self._deliver(notification))
        return Response(status_code=202)

    async def _deliver(self, notification: Notification) -> None:
        try:
            await self.notifier.handle(notification)
        except Exception as exc:  # a background task's outermost frame: log the kind, keep serving
            log.error("alert delivery failed: %s", type(exc).__name__)

    async def drain(self) -> None:
        await self.background.drain()
