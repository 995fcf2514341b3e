"""POST /sms: one Twilio webhook in, one TwiML reply out, with every rule in front of the bot.

Order: the body is bounded and parsed; Twilio's signature is checked; numbers not on the allowlist
get an empty reply; a MessageSid already answered gets its first reply again; the per-number and
global rate limits apply; then the text runs through the conversation path, with a time budget
after which the answer follows by the REST API. Whatever happens, the answer is TwiML, never a 500.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from fastapi import Request, Response

from bot.core.commands.registry import Role
from bot.core.conversation import SOMETHING_WENT_WRONG, Conversation, Reply
from bot.core.roles import role_of
from bot.db.audit import AuditWriter
from bot.db.history import Direction, History, make_entry
from bot.observability import Metrics
from bot.settings import Settings
from bot.sms.encoding import segment_count
from bot.sms.outbound import Sender
from bot.sms.privacy import mask_number
from bot.sms.replies import SmsReplies
from bot.state.protocols import Idempotency, RateLimiter, ReplyPending, StoreUnavailable, Verdict
from bot.web.background import Background
from bot.web.body import bounded_body, hang_ups_answered
from bot.web.security import WebhookSecurity
from bot.web.twiml import TWIML, twiml

log = logging.getLogger(__name__)

MAX_BODY = 16_384
"""Twilio's webhook bodies are a few hundred bytes (a 1,600-character text at most)."""
MAX_FIELDS = 200
OPT_OUT = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE"})
"""Carrier opt-out keywords: the carrier (or Twilio) confirms and blocks; we record it and stay quiet."""
SLOW_DOWN = "Slow down: too many texts. I'll answer again in a minute."
WORKING = "Working on it... the answer follows in a moment."


@dataclass
class Webhook:
    settings: Settings
    security: WebhookSecurity
    conversation: Conversation
    replies: SmsReplies
    limiter: RateLimiter
    idempotency: Idempotency
    history: History
    audit: AuditWriter
    metrics: Metrics
    sender: Sender | None
    background: Background = field(default_factory=Background)

    @hang_ups_answered
    async def __call__(self, request: Request) -> Response:
        started = time.perf_counter()
        body = await bounded_body(request, MAX_BODY)
        if body is None:
            self.metrics.rejected.labels("too_large").inc()
            return Response(status_code=413)
        try:
            params = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FIELDS)
        except (UnicodeDecodeError, ValueError):
            self.metrics.rejected.labels("malformed").inc()
            return Response(status_code=400)
        fields = dict(params)
        number = fields.get("From", "").strip()
        if not self.security.verify(
            request.url.path, request.url.query, params, request.headers.get("x-twilio-signature")
        ):
            self.metrics.rejected.labels("signature").inc()
            log.warning("refused a webhook with a missing or wrong signature (from %s)", mask_number(number))
            return Response(status_code=403)
        role = role_of(self.settings, number)
        if role is None:
            self.metrics.rejected.labels("unknown_number").inc()
            log.info("ignored a text from a number not on the allowlist: %s", mask_number(number))
            await self._record(number, "", "-", "", "rejected", started)
            return Response(twiml(), media_type=TWIML)
        return await self._answer(number, role, fields.get("Body", ""), fields.get("MessageSid", ""), started)

    async def _answer(self, number: str, role: Role, text: str, sid: str, started: float) -> Response:
        # With the shared store down, limits and deduplication fail open: answering twice or too often
        # beats not answering someone who was paged.
        claimed = False
        try:
            if sid:
                earlier = await self.idempotency.claim_if_done(sid)
                if earlier is not None:
                    self.metrics.rejected.labels("duplicate").inc()
                    return Response(earlier, media_type=TWIML)
            verdict = await self.limiter.check(number)
            if verdict is not Verdict.ALLOW:
                self.metrics.rejected.labels("rate_limited").inc()
                await self._record(number, text, "-", "", "rate_limited", started)
                return Response(twiml(SLOW_DOWN if verdict is Verdict.WARN else ""), media_type=TWIML)
            if sid:
                earlier = await self.idempotency.claim(sid)
                if earlier is not None:
                    self.metrics.rejected.labels("duplicate").inc()
                    return Response(earlier, media_type=TWIML)
                claimed = True
        except ReplyPending:
            return Response(twiml(), media_type=TWIML)  # another instance is answering this very message
        except StoreUnavailable as exc:
            log.error("shared store unavailable, answering without limits: %s", exc)
        try:
            xml = await self._run(number, role, text, started)
        except BaseException:
            if claimed:
                with contextlib.suppress(StoreUnavailable):
                    await self.idempotency.abandon(sid)
            raise
        if claimed:
            with contextlib.suppress(StoreUnavailable):
                await self.idempotency.finish(sid, xml)
        return Response(xml, media_type=TWIML)

    async def _run(self, number: str, role: Role, text: str, started: float) -> str:
        task = asyncio.ensure_future(self.conversation.reply(number, text, role))
        try:
            reply = await asyncio.wait_for(asyncio.shield(task), self.settings.reply_budget_s)
        except TimeoutError:
            self._later(task, number, text, started)
            await self._record(number, text, "-", "", "deferred", started)
            return twiml(WORKING)
        except Exception as exc:  # the outermost handler: one text must never turn into a 500
            log.error("reply failed for %s: %s", mask_number(number), type(exc).__name__)
            self.metrics.messages.labels("error", "error").inc()
            await self._record(number, text, "error", "", "error", started)
            return twiml(SOMETHING_WENT_WRONG)
        page = await self.replies.finish(number, reply)
        intent = reply.parse.intent.value
        outcome = "unknown" if intent == "unknown" else "ok"
        self.metrics.messages.labels(intent, outcome).inc()
        self.metrics.latency.labels(intent).observe(time.perf_counter() - started)
        await self._record(number, text, intent, reply.parse.command, outcome, started, page)
        if text.strip().upper() in OPT_OUT:
            return twiml()
        return twiml(page, reply.media)

    def _later(self, task: asyncio.Future[Reply], number: str, text: str, started: float) -> None:
        """Send the answer of a slow command through the REST API once it is ready."""

        async def deliver() -> None:
            media: tuple[str, ...]
            try:
                reply = await task
            except Exception as exc:  # a background task's outermost frame: log it, tell the user
                log.error("deferred reply failed for %s: %s", mask_number(number), type(exc).__name__)
                page, media = SOMETHING_WENT_WRONG, ()
                intent, command = "error", ""
            else:
                page, media = await self.replies.finish(number, reply), reply.media
                intent, command = reply.parse.intent.value, reply.parse.command
            await self._send(number, page, intent, command, started, media)

        self.background.spawn(deliver())

    async def _send(
        self, number: str, page: str, intent: str, command: str, started: float, media: Sequence[str] = ()
    ) -> None:
        if self.sender is None:
            log.warning("no Twilio credentials: a deferred answer to %s was not sent", mask_number(number))
            await self._record(number, page, intent, command, "undeliverable", started, direction="out")
            return
        delivery = await self.sender.send(number, page, media)
        self.metrics.deliveries.labels(delivery.status).inc()
        await self._record(number, page, intent, command, delivery.status, started, direction="out")

    async def _record(
        self, number: str, text: str, intent: str, command: str, outcome: str, started: float,
        reply: str = "", direction: Direction = "in",
    ) -> None:  # fmt: skip
        """History never stands between a text and its reply: entries are queued for the audit writer."""
        self.audit.add(make_entry(
            number, direction, text, intent=intent, command=command,
            latency_ms=(time.perf_counter() - started) * 1000, outcome=outcome,
            segments=segment_count(reply) if reply else 0,
        ))  # fmt: skip

    @hang_ups_answered
    async def status_callback(self, request: Request) -> Response:
        """Twilio's report on a message the bot sent (delivered, failed …), signed like the SMS webhook."""
        body = await bounded_body(request, MAX_BODY)
        if body is None:
            return Response(status_code=413)
        try:
            params = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FIELDS)
        except (UnicodeDecodeError, ValueError):
            return Response(status_code=400)
        if not self.security.verify(
            request.url.path, request.url.query, params, request.headers.get("x-twilio-signature")
        ):
            self.metrics.rejected.labels("signature").inc()
            return Response(status_code=403)
        fields = dict(params)
        status = fields.get("MessageStatus") or fields.get("SmsStatus") or "unknown"
        error = fields.get("ErrorCode", "")
        self.metrics.deliveries.labels(status[:20]).inc()
        self.audit.add(make_entry(fields.get("To", ""), "out", "", intent="status", outcome=status,
                                  message_sid=fields.get("MessageSid") or None,
                                  detail=f"error {error}" if error else None, segments=0))  # fmt: skip
        return Response(status_code=204)

    async def drain(self) -> None:
        """Wait for deferred answers still being sent, then for their history (at shutdown; in tests)."""
        await self.background.drain()
        await self.audit.flush()


Handler = Callable[[Request], Awaitable[Response]]
