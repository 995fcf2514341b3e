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
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace

from fastapi import Request, Response

from bot.core.commands.registry import Role
from bot.core.conversation import SOMETHING_WENT_WRONG, Conversation, ReadMark, Reply
from bot.core.roles import role_of
from bot.db.audit import AuditWriter
from bot.db.history import Direction, History, make_entry
from bot.observability import Metrics
from bot.settings import Settings
from bot.sms.encoding import segment_count
from bot.sms.numbers import caller
from bot.sms.outbound import Sender
from bot.sms.privacy import mask_number
from bot.sms.replies import SmsReplies
from bot.state.protocols import Admission, Idempotency, ReplyPending, StoreUnavailable, Verdict
from bot.web.background import Background
from bot.web.body import hang_ups_answered
from bot.web.security import Refused, WebhookSecurity
from bot.web.twiml import TWIML, twiml
from intents.durations import format_duration
from intents.models import Context, Intent, Parse, seconds_of
from monitors.formatting import clip

log = logging.getLogger(__name__)

MAX_BODY = 16_384
"""Twilio's webhook bodies are a few hundred bytes (a 1,600-character text at most)."""
MAX_FIELDS = 200
OPT_OUT = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE"})
"""Carrier opt-out keywords: the carrier (or Twilio) confirms and blocks; we record it and stay quiet."""
SLOW_DOWN = "Slow down: too many texts. I'll answer again in a minute."
WORKING = "Working on it... the answer follows in a moment."
REPLIED = "replied"
"""The outcome of a text sent in the webhook's TwiML (Twilio sends it; no SID comes back to us)."""
RATE_LIMITED_WARNED = "over the per-number or global rate limit: told to slow down"
RATE_LIMITED_DROPPED = "over the rate limit again: no reply until the bucket refills"


@dataclass
class Webhook:
    settings: Settings
    security: WebhookSecurity
    conversation: Conversation
    replies: SmsReplies
    admission: Admission
    idempotency: Idempotency
    history: History
    audit: AuditWriter
    metrics: Metrics
    sender: Sender | None
    background: Background = field(default_factory=Background)
    delivery_failed: Callable[[str, str, str], Awaitable[object]] | None = None
    """Told (MessageSid, status, error code) when Twilio reports a text failed or undelivered: an on-call page's
    escalation moves to its next step at once."""

    @hang_ups_answered
    async def __call__(self, request: Request) -> Response:
        started = time.perf_counter()
        form = await self.security.signed_form(request, MAX_BODY, MAX_FIELDS)
        if isinstance(form, Refused):
            self.metrics.rejected.labels(form.reason).inc()
            if form.reason == "signature":
                claimed = caller(dict(form.params).get("From", ""), self.settings.default_region)
                log.warning("refused a webhook with a missing or wrong signature (from %s)", mask_number(claimed))
            return Response(status_code=form.status)
        fields = dict(form)
        number = caller(fields.get("From", ""), self.settings.default_region)
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
        known: tuple[Context, ReadMark] | None = None
        mark = self.conversation.read_mark(number)
        try:
            admitted = await self.admission.admit(sid, number)
            if admitted.earlier is not None:
                self.metrics.rejected.labels("duplicate").inc()
                return Response(admitted.earlier, media_type=TWIML)
            if admitted.verdict is not Verdict.ALLOW:
                self.metrics.rejected.labels("rate_limited").inc()
                warned = admitted.verdict is Verdict.WARN
                await self._record(number, text, "-", "", "rate_limited", started,
                                   detail=RATE_LIMITED_WARNED if warned else RATE_LIMITED_DROPPED)  # fmt: skip
                if warned:
                    await self._replied(number, SLOW_DOWN, "-", "", started)
                return Response(twiml(SLOW_DOWN if warned else ""), media_type=TWIML)
            claimed = admitted.claimed
            known = (admitted.context, mark) if admitted.context is not None else None
        except ReplyPending:
            return Response(twiml(), media_type=TWIML)  # another instance is answering this very message
        except StoreUnavailable as exc:
            log.error("shared store unavailable, answering without limits: %s", exc)
        try:
            xml, pages = await self._run(number, role, text, started, known)
        except BaseException:
            if claimed:
                with contextlib.suppress(StoreUnavailable):
                    await self.idempotency.abandon(sid)
            raise
        if claimed or pages is not None:
            try:
                await self.admission.settle(number, pages, sid if claimed else None, xml)
            except StoreUnavailable as exc:
                log.error("shared store unavailable, the reply's pages and repeat not kept: %s", exc)
        return Response(xml, media_type=TWIML)

    async def _run(
        self, number: str, role: Role, text: str, started: float, known: tuple[Context, ReadMark] | None = None
    ) -> tuple[str, list[str] | None]:
        """The TwiML answer, and the later pages to keep for "more" (None: leave the kept ones)."""
        task = asyncio.ensure_future(self.conversation.reply(number, text, role, known))
        try:
            reply = await asyncio.wait_for(asyncio.shield(task), self.settings.reply_budget_s)
        except TimeoutError:
            self._later(task, number, text, started)
            await self._record(number, text, "-", "", "deferred", started, WORKING)
            await self._replied(number, WORKING, "-", "", started)
            return twiml(WORKING), None
        except Exception as exc:  # the outermost handler: one text must never turn into a 500
            log.error("reply failed for %s: %s", mask_number(number), type(exc).__name__)
            self.metrics.messages.labels("error", "error").inc()
            await self._record(number, text, "error", "", "error", started, SOMETHING_WENT_WRONG)
            await self._replied(number, SOMETHING_WENT_WRONG, "error", "", started)
            return twiml(SOMETHING_WENT_WRONG), None
        page, pages = self.replies.paginate(reply)
        intent = reply.parse.intent.value
        outcome = "unknown" if intent == "unknown" else "ok"
        self.metrics.messages.labels(intent, outcome).inc()
        self.metrics.latency.labels(intent).observe(time.perf_counter() - started)
        if text.strip().upper() in OPT_OUT:
            await self._record(number, text, intent, reply.parse.command, outcome, started)
            return twiml(), pages  # the carrier confirms: nothing goes out from us
        await self._record(number, text, intent, reply.parse.command, outcome, started, page)
        await self._replied(number, page, intent, reply.parse.command, started)
        return twiml(page, reply.media), pages

    def _later(self, task: asyncio.Future[Reply], number: str, text: str, started: float) -> None:
        """Send the answer of a slow command through the REST API once it is ready.

        It arrives on its own, after "Working on it" and maybe after other answers, so it names its
        question: "checkout cpu: Prometheus timed out after 4 s" rather than the bare error line.
        """

        async def deliver() -> None:
            media: tuple[str, ...]
            try:
                reply = await task
            except Exception as exc:  # a background task's outermost frame: log it, tell the user
                log.error("deferred reply failed for %s: %s", mask_number(number), type(exc).__name__)
                page, media = labelled(f'"{clip(text, 30)}"', SOMETHING_WENT_WRONG), ()
                intent, command = "error", ""
            else:
                named = replace(reply, text=labelled(question_label(reply.parse), reply.text), context_used=())
                page, media = await self.replies.finish(number, named), reply.media
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
        reply: str = "", direction: Direction = "in", detail: str | None = None,
    ) -> None:  # fmt: skip
        """History never stands between a text and its reply: entries are queued for the audit writer."""
        self.audit.add(make_entry(
            number, direction, text, intent=intent, command=command,
            latency_ms=(time.perf_counter() - started) * 1000, outcome=outcome,
            segments=segment_count(reply) if reply else 0, detail=detail,
        ))  # fmt: skip

    async def _replied(self, number: str, page: str, intent: str, command: str, started: float) -> None:
        """A reply that went out in the webhook's TwiML is a text sent like any other: recorded as one
        (outcome `replied`), so the history and the dashboard's "texts sent" count it."""
        await self._record(number, page, intent, command, REPLIED, started, page, direction="out")

    @hang_ups_answered
    async def status_callback(self, request: Request) -> Response:
        """Twilio's report on a message the bot sent (delivered, failed …), signed like the SMS webhook."""
        form = await self.security.signed_form(request, MAX_BODY, MAX_FIELDS)
        if isinstance(form, Refused):
            if form.reason == "signature":
                self.metrics.rejected.labels("signature").inc()
            return Response(status_code=form.status)
        params = form
        fields = dict(params)
        status = fields.get("MessageStatus") or fields.get("SmsStatus") or "unknown"
        error = fields.get("ErrorCode", "")
        self.metrics.deliveries.labels(status[:20]).inc()
        self.audit.add(make_entry(fields.get("To", ""), "out", "", intent="status", outcome=status,
                                  message_sid=fields.get("MessageSid") or None,
                                  detail=f"error {error}" if error else None, segments=0))  # fmt: skip
        sid = fields.get("MessageSid", "")
        if self.delivery_failed is not None and sid and status in ("failed", "undelivered"):
            self.background.spawn(self._failed(sid, status, error))
        return Response(status_code=204)

    async def _failed(self, sid: str, status: str, error: str) -> None:
        assert self.delivery_failed is not None
        try:
            await self.delivery_failed(sid, status, error)
        except Exception as exc:  # a background task's outermost frame: log the kind, keep serving
            log.error("a failed delivery was not acted on: %s", type(exc).__name__)

    async def drain(self) -> None:
        """Wait for deferred answers still being sent, then for their history (at shutdown; in tests)."""
        await self.background.drain()
        await self.audit.flush()


Handler = Callable[[Request], Awaitable[Response]]

_NAMED_LINE = re.compile(r"([A-Z][\w.-]*(?: [A-Z][\w.-]*)?): ")
"""A line that starts with a backend's name ("Prometheus: timed out after 4 s", "Loki: unreachable")."""
_WORDS = re.compile(r"[\w ]*")
_QUERY_NOUNS = {Intent.LOGS: "logs", Intent.GRAPH: "graph", Intent.HEALTH: "health", Intent.DB: "db",
                Intent.GATEWAY: "gateway", Intent.ALERTS: "alerts", Intent.STATUS: "status"}  # fmt: skip


def question_label(parse: Parse) -> str:
    """What a text asked, shortly, in the words answers use: "checkout cpu", "checkout latency 6h",
    "payment error logs 30m", "database health"; other commands by their strict form."""
    slots = parse.slots
    if parse.intent in (Intent.METRICS, Intent.GRAPH, Intent.LOGS, Intent.HEALTH, Intent.DB, Intent.GATEWAY,
                        Intent.ALERTS, Intent.STATUS):  # fmt: skip
        metric = str(slots.get("metric", "")).replace("_", " ")
        if not _WORDS.fullmatch(metric):
            metric = "query"  # a raw expression: too long and too odd for a label
        words = [
            slots.get("service"), slots.get("system"), slots.get("state"), slots.get("level"),
            metric if parse.intent in (Intent.METRICS, Intent.GRAPH) else None,
            _QUERY_NOUNS.get(parse.intent),
            metric if parse.intent is Intent.DB else None, slots.get("endpoint"),
        ]  # fmt: skip
        span = seconds_of(slots, "range_s")
        if span:
            words.append(format_duration(span))
        label = " ".join(str(w) for w in words if w)
    else:
        label = parse.command or parse.intent.value
    return clip(label, 40)


def labelled(label: str, text: str) -> str:
    """The answer with its question in front, unless it already starts with it; a backend's line reads on:
    "checkout cpu: Prometheus timed out after 4 s"."""
    if not label or text.lower().startswith(label.lower()):
        return text
    named = _NAMED_LINE.match(text)
    if named:
        return f"{label}: {named.group(1)} {text[named.end() :]}"
    return f"{label}: {text}"
