"""The web service: `create_app(settings)` builds it; everything shared is opened in the lifespan.

Routes: POST /sms (Twilio's webhook), GET /healthz (the process answers), GET /readyz (stores and
backends reachable), GET /metrics (Prometheus), GET /media/{token}.png (charts Twilio fetches for MMS),
/dashboard (when configured), GET / (what this is). Nothing is created at
import; uvicorn's workers each build their own app with `app_from_environment()`.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.routing import APIRoute
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.routing import request_response

from bot.alerting.notifier import Notifier
from bot.alerting.rules.loop import rules_running
from bot.charts.media import valid_token
from bot.core.runtime import open_runtime
from bot.dashboard.views import dashboard_router
from bot.db.audit import AuditWriter
from bot.db.health_log import health_recording
from bot.db.history import History
from bot.db.migrate import open_database
from bot.db.subscriptions import SqlSubscriptions
from bot.observability import Metrics, setup_logging
from bot.oncall.ticker import ticking
from bot.settings import Settings, load_settings
from bot.sms.replies import SmsReplies
from bot.state.protocols import StoreUnavailable
from bot.state.stores import open_stores
from bot.web.alert_webhooks import AlertWebhooks
from bot.web.security import WebhookSecurity
from bot.web.voice import VoiceWebhook
from bot.web.webhook import Webhook
from monitors.resilience import fan_out

log = logging.getLogger(__name__)
VERSION = "0.1.0"
SMS_SCHEMA: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "MessageSid": {"type": "string"},
                        "AccountSid": {"type": "string"},
                        "From": {"type": "string"},
                        "To": {"type": "string"},
                        "Body": {"type": "string", "maxLength": 1600},
                        "NumMedia": {"type": "string"},
                    },
                    "required": ["From", "Body"],
                }
            }
        },
    },
    "parameters": [{"name": "X-Twilio-Signature", "in": "header", "required": False, "schema": {"type": "string"}}],
    "responses": {"200": {"description": "TwiML", "content": {"application/xml": {}}}},
}
"""The webhook's form as Twilio posts it (see tests/fixtures/twilio), so schema-driven fuzzers send it."""
ALERT_SCHEMA: dict[str, Any] = {
    "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}},
    "responses": {"202": {"description": "accepted"}, "400": {"description": "bad payload"},
                  "401": {"description": "missing or wrong token"}, "413": {"description": "body too large"}},
}  # fmt: skip
STATUS_SCHEMA: dict[str, Any] = {
    "requestBody": {"required": True, "content": {"application/x-www-form-urlencoded": {"schema": {
        "type": "object", "properties": {"MessageSid": {"type": "string"}, "MessageStatus": {"type": "string"},
                                         "To": {"type": "string"}, "ErrorCode": {"type": "string"}}}}}},
}  # fmt: skip
VOICE_SCHEMA: dict[str, Any] = {
    "parameters": [{"name": "t", "in": "query", "required": True, "schema": {"type": "string"}}],
    "requestBody": {"required": True, "content": {"application/x-www-form-urlencoded": {"schema": {
        "type": "object", "properties": {"CallSid": {"type": "string"}, "To": {"type": "string"},
                                         "Digits": {"type": "string"}, "CallStatus": {"type": "string"}}}}}},
}  # fmt: skip
"""Twilio's voice requests (tests/fixtures/twilio/voice_*_params.txt); `t` names the call."""


def create_app(settings: Settings) -> FastAPI:
    """The app for these settings. Unsafe settings (no signing secret outside dev mode) fail here."""
    security = WebhookSecurity(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        metrics = Metrics()
        database = await open_database(settings.database_url, settings.history_path)
        history = History(database)
        audit = AuditWriter(history)
        subscriptions = SqlSubscriptions(database.engine)
        stores = await open_stores(settings)
        try:
            async with open_runtime(settings, stores=stores, subscriptions=subscriptions, metrics=metrics,
                                    audit=audit) as runtime:  # fmt: skip
                sender = runtime.sender
                oncall = runtime.services.oncall
                webhook = Webhook(
                    settings=settings,
                    security=security,
                    conversation=runtime.conversation,
                    replies=SmsReplies(stores.pages, settings.max_segments, settings.allow_emoji),
                    admission=stores.admission,
                    idempotency=stores.idempotency,
                    history=history,
                    audit=audit,
                    metrics=metrics,
                    sender=sender,
                    delivery_failed=oncall.delivery_failed if oncall is not None else None,
                )
                notifier = Notifier(settings, stores.alerts, stores.contexts, subscriptions, sender, audit, metrics,
                                    dedup=stores.dedup, budget=stores.budget, escalations=oncall)  # fmt: skip
                alerts = AlertWebhooks(settings, notifier)
                app.state.webhook = webhook
                app.state.alerts = alerts
                app.state.runtime = runtime
                app.state.history = history
                app.state.database = database
                app.state.stores = stores
                app.state.voice = None if oncall is None else VoiceWebhook(
                    security, oncall, (settings.public_url or "").rstrip("/"), metrics)  # fmt: skip
                rules = rules_running(settings, runtime.monitors, notifier.handle, lease=stores.rules_lease)
                recording = health_recording(database, runtime.monitors, runtime.services.health_cache,
                    stores.rules_lease, interval_s=settings.health_sample_s,
                    deadline_s=settings.status_deadline_s)  # fmt: skip
                paging = ticking(oncall, stores.rules_lease) if oncall is not None else _nothing()
                async with rules, recording, paging:
                    # Everything built so far (the parser's vocabularies, spaCy's tables) lives as long as the
                    # process: keep the cyclic garbage collector from walking it on every full collection.
                    gc.freeze()
                    yield
                await alerts.drain()
                if app.state.voice is not None:
                    await app.state.voice.drain()
                await webhook.drain()
        finally:
            await stores.close()
            await audit.close()
            await database.close()

    app = FastAPI(title="Operator", version=VERSION, lifespan=lifespan, docs_url=None, redoc_url=None)
    app.include_router(dashboard_router(settings))  # no routes at all unless configured

    async def sms(request: Request) -> Response:
        webhook: Webhook = request.app.state.webhook
        return await webhook(request)

    async def alertmanager_webhook(request: Request) -> Response:
        hooks: AlertWebhooks = request.app.state.alerts
        return await hooks.alertmanager(request)

    async def datadog_webhook(request: Request) -> Response:
        hooks: AlertWebhooks = request.app.state.alerts
        return await hooks.datadog(request)

    async def grafana_webhook(request: Request) -> Response:
        hooks: AlertWebhooks = request.app.state.alerts
        return await hooks.grafana(request)

    async def newrelic_webhook(request: Request) -> Response:
        hooks: AlertWebhooks = request.app.state.alerts
        return await hooks.newrelic(request)

    async def twilio_status(request: Request) -> Response:
        webhook: Webhook = request.app.state.webhook
        return await webhook.status_callback(request)

    async def voice(request: Request) -> Response:
        return await _voice(request, "answer")

    async def voice_gather(request: Request) -> Response:
        return await _voice(request, "gather")

    async def voice_status(request: Request) -> Response:
        return await _voice(request, "status")

    for path, endpoint, summary, schema in [
        ("/sms", sms, "Twilio incoming-message webhook", SMS_SCHEMA),
        ("/webhooks/alertmanager", alertmanager_webhook, "Alertmanager webhook (version 4)", ALERT_SCHEMA),
        ("/webhooks/datadog", datadog_webhook, "Datadog webhook", ALERT_SCHEMA),
        ("/webhooks/grafana", grafana_webhook, "Grafana webhook contact point (version 1)", ALERT_SCHEMA),
        ("/webhooks/newrelic", newrelic_webhook, "New Relic workflow webhook", ALERT_SCHEMA),
        ("/twilio/status", twilio_status, "Twilio message status callback", STATUS_SCHEMA),
        ("/twilio/voice", voice, "Twilio voice webhook: an on-call call was answered", VOICE_SCHEMA),
        (
            "/twilio/voice/gather",
            voice_gather,
            "Twilio voice webhook: a key pressed during an on-call call",
            VOICE_SCHEMA,
        ),
        ("/twilio/voice/status", voice_status, "Twilio call status callback", VOICE_SCHEMA),
    ]:
        app.router.add_api_route(path, endpoint, methods=["POST"], response_class=Response, summary=summary,
                                 openapi_extra=schema, route_class_override=_WebhookRoute)  # fmt: skip

    @app.api_route("/media/{name}", methods=["GET", "HEAD"], include_in_schema=False)
    async def media(name: str, request: Request) -> Response:
        return await _media(name, request)

    @app.get("/healthz", response_class=PlainTextResponse)
    async def healthz() -> str:
        return "ok"

    @app.get("/readyz")
    async def readyz(request: Request) -> JSONResponse:
        return await _readiness(request)

    @app.get("/metrics", response_class=PlainTextResponse)
    async def metrics(request: Request) -> Response:
        webhook: Webhook = request.app.state.webhook
        return Response(generate_latest(webhook.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/")
    async def index() -> dict[str, Any]:
        return {"service": "Operator", "version": VERSION, "sms_webhook": "/sms", "docs": "README.md"}

    return app


async def _voice(request: Request, what: str) -> Response:
    """The voice webhooks exist only with on-call paging configured; otherwise they are 404s."""
    voice: VoiceWebhook | None = request.app.state.voice
    if voice is None:
        return Response(status_code=404)
    if what == "answer":
        return await voice.answer(request)
    return await (voice.gather(request) if what == "gather" else voice.status(request))


@asynccontextmanager
async def _nothing() -> AsyncIterator[None]:
    yield None


class _WebhookRoute(APIRoute):
    """A route in the OpenAPI schema like any other, served as a plain Starlette endpoint.

    The webhooks take the raw `Request` (their bodies are signed, so they read and bound them
    themselves) and build their own `Response`; FastAPI's per-request machinery around them
    (dependency solving, its body-limit and telemetry wrappers) has nothing to do, yet cost 15% of
    the time of every text on the SMS hot path (bench/webhook.py).
    """

    def __init__(self, path: str, endpoint: Any, **options: Any) -> None:
        super().__init__(path, endpoint, **options)
        self.app = request_response(endpoint)


_MEDIA_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


async def _media(name: str, request: Request) -> Response:
    """A chart for Twilio to fetch: the unguessable token is the only key, so anything that is not one is a
    404 before any store is asked, and an unknown or expired one is the same 404."""
    token = name.removesuffix(".png")
    if token == name or not valid_token(token):
        return Response(status_code=404, headers=_MEDIA_HEADERS)
    try:
        found = await request.app.state.stores.media.get(token)
    except StoreUnavailable:
        return Response(status_code=503, headers={**_MEDIA_HEADERS, "Retry-After": "5"})
    if found is None:
        return Response(status_code=404, headers=_MEDIA_HEADERS)
    data, content_type = found
    return Response(data, media_type=content_type, headers=_MEDIA_HEADERS)


async def _readiness(request: Request) -> JSONResponse:
    """Ready when the history store answers and, if monitors are configured, at least one is up."""
    from bot.db.database import DatabaseUnavailable

    runtime = request.app.state.runtime
    checks: dict[str, str] = {}
    ok = True
    try:
        await request.app.state.database.ping()
        checks["history"] = "ok"
    except DatabaseUnavailable:
        checks["history"] = "unavailable"
        ok = False
    if request.app.state.stores.shared:  # reported, not failed: the bot answers without it (degraded)
        try:
            await request.app.state.stores.ping()
            checks["shared_store"] = "ok"
        except StoreUnavailable:
            checks["shared_store"] = "unavailable"
    cache = runtime.services.health_cache
    monitors = list(runtime.monitors)
    checked = await fan_out(monitors, cache, runtime.settings.status_deadline_s)
    for result in checked:
        checks[result.monitor.name] = "ok" if result.health is not None and result.health.ok else "down"
    if monitors and not any(result.health is not None and result.health.ok for result in checked):
        ok = False
    return JSONResponse({"ready": ok, "checks": checks}, status_code=200 if ok else 503)


def app_from_environment() -> FastAPI:
    """The factory uvicorn's workers call: settings from OPERATOR_CONFIG and the environment."""
    settings = load_settings()
    setup_logging(settings.log_json, settings.log_level)
    return create_app(settings)
