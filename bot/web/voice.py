"""POST /twilio/voice, /twilio/voice/gather and /twilio/voice/status: the on-call call, its key press and how
it ended.

Each is signed by Twilio and checked exactly like /sms (`WebhookSecurity`, against `public_url` plus the
path and query); an unsigned or wrongly signed request gets a 403 and changes nothing. The query's `t` is
the call's token, 144 random bits the bot made when it placed the call: it names the page (whose alerts,
which step, whose phone) in the shared store, so any instance can answer. Twilio waits 15 s for TwiML,
so a key press that takes longer (an escalation paging the next people) is answered by then and finishes
in the background.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass, field

from fastapi import Request, Response

from bot.observability import Metrics
from bot.oncall.service import OnCall
from bot.oncall.voice import ask_again_twiml, call_twiml, result_twiml
from bot.state.protocols import StoreUnavailable
from bot.web.background import Background
from bot.web.security import Refused, WebhookSecurity
from bot.web.twiml import TWIML

log = logging.getLogger(__name__)

MAX_BODY = 16_384
MAX_FIELDS = 200
ANSWER_BUDGET_S = 8.0
"""A key press answers within this (Twilio gives up on a webhook after 15 s); the rest goes on in the background."""
_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,64}")
GONE = "This page has ended. Goodbye."
UNAVAILABLE = "Sorry, the bot cannot reach its state right now. Please text it instead. Goodbye."
WORKING = "Done. The next pages are on their way. Goodbye."


@dataclass
class VoiceWebhook:
    security: WebhookSecurity
    oncall: OnCall
    public_url: str
    metrics: Metrics | None = None
    background: Background = field(default_factory=Background)

    async def _checked(self, request: Request) -> tuple[str, dict[str, str]] | Response:
        """The call's token and the form, or the response refusing the request."""
        form = await self.security.signed_form(request, MAX_BODY, MAX_FIELDS)
        if isinstance(form, Refused):
            if form.reason == "signature":
                if self.metrics is not None:
                    self.metrics.rejected.labels("signature").inc()
                log.warning("refused a voice webhook with a missing or wrong signature")
            return Response(status_code=form.status)
        params = form
        token = request.query_params.get("t", "")
        if not _TOKEN.fullmatch(token):
            return Response(status_code=404)
        return token, dict(params)

    def _action(self, token: str) -> str:
        return f"{self.public_url}/twilio/voice/gather?t={token}"

    async def answer(self, request: Request) -> Response:
        """The call was answered: what it says, and the keys it gathers."""
        checked = await self._checked(request)
        if isinstance(checked, Response):
            return checked
        token, fields = checked
        try:
            script = await self.oncall.call_script(token)
        except StoreUnavailable:
            return _twiml(result_twiml(UNAVAILABLE))
        if script is None or (fields.get("To") and fields["To"] != script[1]):
            return _twiml(result_twiml(GONE))
        return _twiml(call_twiml(script[0], self._action(token)))

    async def gather(self, request: Request) -> Response:
        """A key was pressed."""
        checked = await self._checked(request)
        if isinstance(checked, Response):
            return checked
        token, fields = checked
        task = asyncio.ensure_future(self.oncall.pressed(token, fields.get("Digits", "").strip()[:1]))
        try:
            said = await asyncio.wait_for(asyncio.shield(task), ANSWER_BUDGET_S)
        except TimeoutError:
            self.background.spawn(_finish(task))
            return _twiml(result_twiml(WORKING))
        except StoreUnavailable:
            return _twiml(result_twiml(UNAVAILABLE))
        except Exception as exc:  # the outermost handler: a call must hear something, never a 500
            log.error("a key press failed: %s", type(exc).__name__)
            return _twiml(result_twiml(UNAVAILABLE))
        if said is None:
            return _twiml(ask_again_twiml(self._action(token)))
        return _twiml(result_twiml(said))

    async def status(self, request: Request) -> Response:
        """How the call ended: busy, unanswered or failed moves its escalations on at once."""
        checked = await self._checked(request)
        if isinstance(checked, Response):
            return checked
        token, fields = checked
        status = fields.get("CallStatus", "")
        if self.metrics is not None:
            self.metrics.deliveries.labels(f"call {status}"[:20]).inc()
        self.background.spawn(_ended(self.oncall, token, status))
        return Response(status_code=204)

    async def drain(self) -> None:
        await self.background.drain()


async def _finish(task: asyncio.Future[str | None]) -> None:
    try:
        await task
    except Exception as exc:  # a background task's outermost frame: log the kind, keep serving
        log.error("a key press failed to finish: %s", type(exc).__name__)


async def _ended(oncall: OnCall, token: str, status: str) -> None:
    try:
        await oncall.call_ended(token, status)
    except Exception as exc:  # a background task's outermost frame
        log.error("a call's status was not handled: %s", type(exc).__name__)


def _twiml(xml: str) -> Response:
    return Response(xml, media_type=TWIML)
