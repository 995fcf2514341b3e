"""Acting on alerts by reply: ack, silence (confirmed with a code), confirm, undo, unsilence, and
subscribing to alert texts.

A number in "ack 2" or "silence 2 1h" is the position in the last list or alert text that person
received (kept in their context); a name is looked up among open alerts. Writes need the operator
role (the registry enforces it before the handler runs).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from bot.alerting.model import AlertEvent, Notification, Severity
from bot.alerting.texts import LABEL_LIMIT, alert_name, clean, label_value
from bot.core.commands.registry import Answer, Request, command
from bot.state.protocols import StoreUnavailable, SubscriptionsUnavailable
from intents.durations import format_duration
from intents.models import Source, seconds_of
from monitors.alert_lists import gather_alerts
from monitors.base import Alert, AlertQuery, AlertWriter, Kind
from monitors.errors import BackendError, BackendQueryError, describe
from monitors.formatting import clip, safe


@dataclass(frozen=True)
class Target:
    """The alert a reply means, with the labels a silence must match."""

    fingerprint: str
    name: str
    labels: dict[str, str]
    listed: AlertEvent | None = None
    """The alert as the alerting backend reports it, when only the backend knew it (not yet notified
    here, e.g. after a restart on in-memory state): adopted into the alert store to be acked."""

    @property
    def description(self) -> str:
        """ "HighCPU{service=checkout}", cleaned as alert texts are (no links, GSM-7, one line)."""
        labels = ((clean(k, LABEL_LIMIT), label_value(v)) for k, v in sorted(self.labels.items())
                  if k not in ("alertname", "severity"))  # fmt: skip
        shown = ",".join(f"{k}={v}" for k, v in labels if k and v)
        name = alert_name(self.name)
        return clip(f"{name}{{{shown}}}" if shown else name, 80)


def _writer(request: Request, source: str | None = None) -> AlertWriter | None:
    """Where a silence of an alert from `source` is made: that backend when it can silence (a Grafana
    alert in Grafana), else the preferred one."""
    return request.services.monitors.alert_writer(source)


async def _expire(request: Request, silence_id: str, source: str | None = None) -> None:
    """Ends a silence in whichever backend has it: the source's first, then the others (an id alone does
    not say which made it). A backend that failed outranks one that refused ("silence not found"): the
    silence may be in the one that could not answer."""
    refused: BackendError | None = None
    failed: BackendError | None = None
    for writer in request.services.monitors.alert_writers(source):
        try:
            await writer.expire_silence(silence_id)
            return
        except BackendQueryError as exc:  # not this backend's silence, most likely: ask the next
            refused = refused or exc
        except BackendError as exc:
            failed = failed or exc
    error = failed or refused
    if error is not None:
        raise error


async def _listing(request: Request) -> tuple[list[Alert], BackendError | None]:
    """Every alerting backend's open alerts, each tagged with its system, and the first failure (a
    reference not found among the answers may be in the backend that failed). Raises when none answered."""
    backends = request.services.monitors.for_kind(Kind.ALERTS)
    if not backends:
        return [], None
    gathered = await gather_alerts(backends, AlertQuery("all"))
    if gathered.result is None:
        error = gathered.first_error()
        assert error is not None
        raise error
    return list(gathered.result.alerts), gathered.first_error()


def _reported(alert: Alert, fingerprint: str) -> Target:
    """A target only the backend knows, with the event to adopt if it is firing."""
    labels = dict(alert.labels)
    started = datetime.fromtimestamp(alert.starts_at, UTC) if alert.starts_at is not None else None
    event = AlertEvent(fingerprint, alert.name, labels, "firing", Severity.parse(labels.get("severity")),
                       alert.summary, started, source=alert.source)  # fmt: skip
    return Target(fingerprint, alert.name, labels, event if alert.state == "firing" else None)


async def alert_target(request: Request) -> Target | Answer:
    """The alert the text's `alert` slot means, or the short answer saying why there is none (not in the
    last list, no longer open, the alerting backend failing)."""
    try:
        target = await resolve(request, str(request.parse.slots["alert"]))
    except BackendError as exc:
        return Answer(describe(exc))
    return Answer(target) if isinstance(target, str) else target


async def resolve(request: Request, reference: str) -> Target | str:
    """The alert `reference` (a list number or a name) means, or a short reply saying why not."""
    if reference.isdigit():
        return await _by_number(request, int(reference))
    matches = [_target(a.event) for a in await request.services.alerts.by_name(reference)]
    if not matches:
        listed, failure = await _listing(request)
        matches = [_reported(a, a.fingerprint) for a in listed
                   if a.name.lower() == reference.lower() and a.state == "firing"]  # fmt: skip
        if not matches and failure is not None:
            raise failure  # it may be open in the backend that could not answer
    if not matches:
        return f"No open alert named {safe(reference, 40)}. Text 'alerts' for the list."
    if len(matches) > 1:
        lines = "\n".join(f"{n}) {t.description}" for n, t in enumerate(matches[:8], 1))
        return f"{len(matches)} open {safe(reference, 40)} alerts:\n{lines}\nReply with the number."
    return matches[0]


async def _by_number(request: Request, position: int) -> Target | str:
    """The alert at `position` of the last list or alert text this person received."""
    numbered = request.context.alerts
    if not 1 <= position <= len(numbered):
        return f"No alert {position} in your last list. Text 'alerts' for the current one."
    fingerprint = numbered[position - 1]
    known = await request.services.alerts.get(fingerprint)
    if known is not None:
        return _target(known.event)
    listed, failure = await _listing(request)
    for alert in listed:
        if fingerprint in (alert.fingerprint, alert.name):
            return _reported(alert, alert.fingerprint or fingerprint)
    if failure is not None:
        raise failure
    return f"Alert {position} is no longer open."


def _target(event: AlertEvent) -> Target:
    return Target(event.fingerprint, event.name, dict(event.labels))


def _name(request: Request) -> str:
    settings = request.services.settings
    user = settings.users.get(request.user)
    return user.name if user is not None and user.name else request.user[-4:].rjust(len(request.user), "*")


@command("ack", role="operator", usage="ack <number|alert>")
async def ack(request: Request) -> Answer:
    """Acknowledges an alert: you are on it, so its repeats stop texting everyone."""
    target = await alert_target(request)
    if isinstance(target, Answer):
        return target
    book = request.services.alerts
    actions = request.services.actions
    who = _name(request)
    acked = await book.ack(target.fingerprint, who)
    if acked is None and target.listed is not None:  # firing at the backend, unknown here: adopt it
        await book.update(Notification(target.listed.source, "adopted", "firing", (target.listed,)))
        acked = await book.ack(target.fingerprint, who)
    if acked is None:
        return Answer(f"{target.description} is not open here (already resolved?).")
    await actions.done(request.user, "ack", target.fingerprint, target.description)
    paging = await _stop_paging(request, target.fingerprint, who)
    return Answer(f"Acked {target.description} for {who}. Its repeats won't text again. (undo within 5 min){paging}")


async def _stop_paging(request: Request, fingerprint: str, who: str) -> str:
    """An ack stops the alert's escalation (if it has one) and tells the others already paged who took it."""
    oncall = request.services.oncall
    if oncall is None:
        return ""
    try:
        told = await oncall.acked(fingerprint, who, request.user)
    except StoreUnavailable:
        return " (Paging state is unavailable: the escalation may go on.)"
    if told is None:
        return ""
    return f" Paging stopped; told {', '.join(told)}." if told else " Paging stopped."


@command("silence", role="operator", usage="silence <number|alert> <duration>")
async def silence(request: Request) -> Answer:
    """Mutes an alert for a while, after you confirm with the code sent back: "silence HighCPU 2h"."""
    if _writer(request) is None:
        return Answer("No alertmanager is configured, so nothing can be silenced.")
    target = await alert_target(request)
    if isinstance(target, Answer):
        return target
    duration = seconds_of(request.parse.slots, "duration_s") or 3600
    actions = request.services.actions
    comment = " ".join(request.text.split())[:200] or request.parse.command
    proposal = await actions.propose(request.user, target.fingerprint, target.description, duration, comment)
    question = f"Silence {target.description} for {format_duration(duration)}? Reply Y {proposal.code}"
    return Answer(question, replace(request.context, pending_code=proposal.code))


@command("confirm", usage="y <code>")
async def confirm(request: Request) -> Answer:
    """Confirms a silence the bot asked about: reply "Y 4821" with the code it sent."""
    actions = request.services.actions
    code = typed_code(request)
    proposal = await actions.accept(request.user, code) if code is not None else None
    if proposal is None:
        waiting = await actions.pending_code(request.user)
        if waiting is None:
            return Answer("Nothing is waiting for confirmation.")
        asked = replace(request.context, pending_code=waiting)  # still the question asked last
        if code is None:
            return Answer(f"Reply Y {waiting} to confirm (the code makes sure it's the right alert).", asked)
        return Answer(f"That code does not match. Reply Y {waiting} to confirm.", asked)
    if request.role != "operator":
        return Answer("Only operators can silence alerts.")
    book = request.services.alerts
    if _writer(request) is None:
        return Answer("No alertmanager is configured, so nothing can be silenced.")
    known = await book.get(proposal.fingerprint)
    labels = dict(known.event.labels) if known else {}
    source = known.event.source if known else None
    try:
        if not labels:  # only the backend knows it: silence it where it was listed (Grafana's in Grafana)
            listed, failure = await _listing(request)
            match = next((a for a in listed if a.fingerprint == proposal.fingerprint), None)
            if match is None and failure is not None:
                raise failure  # it may be in the backend that could not answer
            if match is not None:
                labels, source = dict(match.labels), match.source
        if not labels:
            return Answer(f"{proposal.description} is no longer open; nothing silenced.")
        alert = Alert(labels.get("alertname", proposal.description), labels, "firing", fingerprint=proposal.fingerprint)
        writer = _writer(request, source)
        assert writer is not None
        silence_id = await writer.create_silence(alert, proposal.duration_s, _name(request), proposal.text)
    except BackendError as exc:
        return Answer(describe(exc))
    await actions.done(request.user, "silence", proposal.fingerprint, proposal.description, silence_id)
    return Answer(f"Silenced {proposal.description} for {format_duration(proposal.duration_s)} "
                  f"(silence {silence_id[:8]}). Text 'undo' within 5 min to lift it.")  # fmt: skip


def typed_code(request: Request) -> str | None:
    """The code the person actually typed, or None for a bare "Y"/"yes"/"confirm".

    The parser fills in the pending code for a bare "Y" (source `context`); a write must not happen
    without its code, so here only digits present in the text count."""
    code = request.parse.slots.get("code")
    if code is None:
        return None
    if request.parse.source is Source.CONTEXT and str(code) not in re.findall(r"\d+", request.text):
        return None
    return str(code)


@command("undo", role="operator", usage="undo")
async def undo(request: Request) -> Answer:
    """Reverses your last silence or ack within a few minutes."""
    actions = request.services.actions
    done = await actions.undoable(request.user)
    if done is None:
        return Answer("Nothing to undo (undo works for 5 minutes after a silence or ack).")
    if done.kind == "ack":
        book = request.services.alerts
        await book.unack(done.fingerprint)
        resumed = ""
        if request.services.oncall is not None:
            try:
                resumed = " Paging resumes." if await request.services.oncall.unacked(done.fingerprint) else ""
            except StoreUnavailable:
                resumed = " (Paging state is unavailable: the escalation stays stopped.)"
        return Answer(f"Ack of {done.description} undone.{resumed}")
    if _writer(request) is None or done.silence_id is None:
        return Answer("No alertmanager is configured, so the silence cannot be lifted.")
    try:
        known = await request.services.alerts.get(done.fingerprint)
    except StoreUnavailable:
        known = None  # then every backend that can silence is asked
    try:
        await _expire(request, done.silence_id, known.event.source if known else None)
    except BackendError as exc:
        await actions.keep(request.user, done)  # still undoable: the user may retry
        return Answer(describe(exc))
    return Answer(f"Silence of {done.description} lifted.")


@command("unsilence", role="operator", usage="unsilence <silence id>")
async def unsilence(request: Request) -> Answer:
    """Ends a silence by its id (as the silence confirmation gave it)."""
    if _writer(request) is None:
        return Answer("No alertmanager is configured.")
    silence_id = str(request.parse.slots["id"])
    try:
        await _expire(request, silence_id)
    except BackendError as exc:
        return Answer(describe(exc))
    return Answer(f"Silence {silence_id[:8]} ended.")


@command("subscribe", usage="subscribe")
async def subscribe(request: Request) -> Answer:
    """Start receiving alert texts on this number."""
    return await _subscription(
        request, True, "Subscribed: alert texts will come to this number. 'unsubscribe' stops them."
    )


@command("unsubscribe", usage="unsubscribe")
async def unsubscribe(request: Request) -> Answer:
    """Stop receiving alert texts on this number."""
    return await _subscription(request, False, "Unsubscribed: no more alert texts. 'subscribe' starts them again.")


async def _subscription(request: Request, subscribed: bool, reply: str) -> Answer:
    store = request.services.subscriptions
    try:
        await store.set(request.user, subscribed)
    except SubscriptionsUnavailable:
        return Answer("Sorry, your choice could not be saved right now. Try again in a minute.")
    return Answer(reply)
