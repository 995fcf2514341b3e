"""Escalations driven by an injectable clock: an alert that follows a policy pages the person on call at once,
then each step after its wait until someone acks; acks stop it and tell the others, resolution tells everyone
paged, `escalate`, a failed delivery or an unanswered call moves on at once, and steps run once however many
runners race for them. In memory; `test_oncall_stores.py` runs the stores' contract against Redis too."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.alerting.model import AlertEvent, Notification, Severity
from bot.alerting.notifier import Notifier
from bot.oncall.escalation import CLAIM_S, Event
from bot.oncall.service import OnCall, Taken
from bot.settings import Settings, load_settings
from bot.sms.outbound import Delivery
from bot.state.memory.subscriptions import InMemorySubscriptions
from bot.state.protocols import Stores
from bot.state.stores import local_stores
from monitors.registry import MonitorRegistry
from tests.fakes import RecordingCaller, RecordingSender, ScriptedWriter

pytestmark = pytest.mark.anyio

ALICE, BOB, CAROL, DAVE = "+15551230001", "+15551230002", "+15551230003", "+15551230004"
BERLIN = ZoneInfo("Europe/Berlin")
T0 = datetime(2026, 1, 6, 12, 0, tzinfo=BERLIN).timestamp()  # alice's week on payments
CONFIG = f"""\
public_url: https://ops.example.com
users:
  "{ALICE}": {{name: alice, role: operator, quiet_hours: "00:00-23:59", min_severity: critical}}
  "{BOB}": {{name: bob, role: operator}}
  "{CAROL}": {{name: carol, role: viewer}}
  "{DAVE}": {{name: dave, role: operator}}
schedules:
  payments: {{members: [alice, bob], shift: 1w, handoff: "2026-01-05 09:00", timezone: Europe/Berlin}}
escalation:
  default:
    - {{notify: payments, wait: 5m}}
    - {{call: payments, wait: 5m}}
    - {{notify: [carol, dave], wait: 10m}}
    - {{notify: all}}
routes:
  - {{match: {{team: search}}, policy: fast}}
"""
FAST = """\
  fast:
    - {notify: bob, wait: 0}
    - {notify: dave}
"""


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Bed:
    settings: Settings
    clock: Clock
    stores: Stores
    sender: RecordingSender
    caller: RecordingCaller
    writer: ScriptedWriter
    oncall: OnCall
    notifier: Notifier

    def texts(self, since: int = 0) -> list[tuple[str, str]]:
        return [(to, body) for to, body, _ in self.sender.sent[since:]]

    def to(self, number: str) -> list[str]:
        return [body for to, body in self.texts() if to == number]

    def other(self) -> OnCall:
        """A second runner on the same stores (another instance)."""
        return OnCall(self.settings, escalations=self.stores.escalations, overrides=self.stores.overrides,
                      alerts=self.stores.alerts, contexts=self.stores.contexts, subscriptions=InMemorySubscriptions(),
                      budget=self.stores.budget, sender=self.sender, caller=self.caller, clock=self.clock)  # fmt: skip


def make_bed(tmp_path: Path, extra: str = "") -> Bed:
    path = tmp_path / "operator.yaml"
    path.write_text(CONFIG.replace("routes:", FAST + "routes:") + extra, "utf-8")
    settings = load_settings(path, environ={}, env_file=None)
    clock = Clock()
    stores = local_stores(settings)
    sender, caller, writer = RecordingSender(), RecordingCaller(), ScriptedWriter("alertmanager")
    monitors = MonitorRegistry()
    subscriptions = InMemorySubscriptions()
    oncall = OnCall(settings, escalations=stores.escalations, overrides=stores.overrides, alerts=stores.alerts,
                    contexts=stores.contexts, subscriptions=subscriptions, budget=stores.budget, sender=sender,
                    caller=caller, writer=lambda: writer, clock=clock)  # fmt: skip
    notifier = Notifier(settings, stores.alerts, stores.contexts, subscriptions, sender, clock=clock,
                        dedup=stores.dedup, budget=stores.budget, escalations=oncall)  # fmt: skip
    del monitors
    return Bed(settings, clock, stores, sender, caller, writer, oncall, notifier)


@pytest.fixture
def bed(tmp_path: Path) -> Bed:
    return make_bed(tmp_path)


def alert(name: str = "DiskFull", fingerprint: str = "fp-disk", status: str = "firing",
          severity: Severity = Severity.WARNING, **labels: str) -> AlertEvent:  # fmt: skip
    return AlertEvent(fingerprint, name, {"alertname": name, "instance": "db1:9100", **labels}, status,  # type: ignore[arg-type]
                      severity, summary="Disk 97% full")  # fmt: skip


_deliveries = iter(range(1_000_000))


def note(*alerts: AlertEvent) -> Notification:
    status = "firing" if any(a.status == "firing" for a in alerts) else "resolved"
    return Notification("alertmanager", "group", status, tuple(alerts), delivery_key=f"d{next(_deliveries)}")  # type: ignore[arg-type]


async def test_the_person_on_call_is_paged_at_once_quiet_hours_and_severity_notwithstanding(bed: Bed) -> None:
    handled = await bed.notifier.handle(note(alert()))
    assert handled.texts == 0  # nothing broadcast: the escalation took it
    assert [to for to, _ in bed.texts()] == [ALICE]  # alice is in quiet hours and wants only criticals
    body = bed.to(ALICE)[0]
    assert body.startswith("FIRING 1 warning: DiskFull\n1) db1:9100 - Disk 97% full") and "Reply ack N" in body
    assert (await bed.stores.contexts.get(ALICE)).alerts == ("fp-disk",)  # "ack 1" means this alert
    timeline = await bed.stores.escalations.get("fp-disk")
    assert timeline is not None and timeline.step == 1 and timeline.due == T0 + 300
    assert [(e.kind, e.step, e.name) for e in timeline.events] == [("sms", 0, "alice")]


async def test_each_step_runs_after_its_wait_once_then_the_escalation_waits_for_an_ack(bed: Bed) -> None:
    await bed.notifier.handle(note(alert()))
    for seconds, sent_texts, calls in [(299, 1, 0), (1, 1, 1), (1, 1, 1), (298, 1, 1), (1, 3, 1), (599, 3, 1),
                                       (1, 6, 1), (3600, 6, 1)]:  # fmt: skip
        bed.clock.advance(seconds)
        await bed.oncall.tick()
        await bed.oncall.tick()  # a second pass finds nothing more to do
        assert (len(bed.texts()), len(bed.caller.calls)) == (sent_texts, calls), bed.clock.now - T0
    assert bed.caller.calls[0][0] == ALICE
    url, status = bed.caller.calls[0][1], bed.caller.calls[0][2]
    assert url.startswith("https://ops.example.com/twilio/voice?t=") and status is not None
    assert status.startswith("https://ops.example.com/twilio/voice/status?t=")
    assert sorted(to for to, _ in bed.texts()[1:3]) == [CAROL, DAVE]
    assert "Reply ack" not in bed.to(CAROL)[0] and bed.to(DAVE)[0].startswith("[escalated] FIRING")
    # `all`: everyone by their own preferences; alice wants only criticals, so the last step skips her
    assert sorted(to for to, _ in bed.texts()[3:]) == [BOB, CAROL, DAVE]
    timeline = await bed.stores.escalations.get("fp-disk")
    assert timeline is not None and timeline.step == 4 and timeline.due is None and timeline.state == "open"


async def test_an_ack_stops_it_and_tells_the_others_already_paged(bed: Bed) -> None:
    await bed.notifier.handle(note(alert()))
    bed.clock.advance(300)
    await bed.oncall.tick()  # the call to alice
    bed.clock.advance(300)
    await bed.oncall.tick()  # carol and dave texted
    told = await bed.oncall.acked("fp-disk", "dave", DAVE)
    assert told == ["alice", "carol"]
    assert bed.to(ALICE)[-1] == "DiskFull db1:9100 acked by dave: paging stopped."
    assert bed.to(CAROL)[-1] == "DiskFull db1:9100 acked by dave: paging stopped."
    assert len(bed.to(DAVE)) == 1  # the acker is not told their own ack
    before = len(bed.texts())
    bed.clock.advance(3600)
    await bed.oncall.tick()
    assert len(bed.texts()) == before
    assert await bed.oncall.acked("fp-disk", "bob", BOB) is None  # already acked: nothing to stop


async def test_repeats_page_nobody_whether_acked_or_not(bed: Bed) -> None:
    await bed.notifier.handle(note(alert()))
    await bed.notifier.handle(note(alert()))  # Alertmanager's repeat: the escalation is the reminder
    assert len(bed.texts()) == 1
    await bed.stores.alerts.ack("fp-disk", "alice")
    await bed.oncall.acked("fp-disk", "alice", ALICE)
    bed.clock.advance(3600)
    await bed.notifier.handle(note(alert()))  # a repeat of an acked alert
    await bed.oncall.tick()
    assert len(bed.texts()) == 1 and bed.caller.calls == []


async def test_resolution_ends_it_and_tells_everyone_paged_once(bed: Bed) -> None:
    await bed.notifier.handle(note(alert()))
    for _ in range(2):
        bed.clock.advance(300)
        await bed.oncall.tick()
    paged = {to for to, _ in bed.texts()}
    assert paged == {ALICE, CAROL, DAVE}
    before = len(bed.texts())
    await bed.notifier.handle(note(alert(status="resolved")))
    resolved = bed.texts(before)
    assert sorted(to for to, _ in resolved) == [ALICE, CAROL, DAVE]
    assert all(body == "RESOLVED: DiskFull db1:9100" for _, body in resolved)
    await bed.notifier.handle(note(alert(status="resolved")))  # a repeat of the resolution
    bed.clock.advance(3600)
    await bed.oncall.tick()
    assert len(bed.texts()) == before + 3
    timeline = await bed.stores.escalations.get("fp-disk")
    assert timeline is not None and timeline.state == "resolved" and timeline.events[-1].kind == "resolved"


async def test_a_new_episode_after_resolution_escalates_afresh(bed: Bed) -> None:
    await bed.notifier.handle(note(alert()))
    await bed.notifier.handle(
        note(replace(alert(status="resolved"), ends_at=datetime(2026, 1, 6, 11, 1, tzinfo=BERLIN)))
    )
    bed.clock.advance(60)
    await bed.notifier.handle(note(replace(alert(), starts_at=datetime(2026, 1, 6, 12, 1, tzinfo=BERLIN))))
    assert [to for to, body in bed.texts() if body.startswith("FIRING")] == [ALICE, ALICE]


async def test_alerts_without_a_policy_are_broadcast_as_before(tmp_path: Path) -> None:
    bed = make_bed(tmp_path, "")
    bed.oncall.policies.escalation.pop("default")  # only the routed policy is left
    await bed.notifier.handle(note(alert(severity=Severity.CRITICAL)))
    assert sorted(to for to, _ in bed.texts()) == [ALICE, BOB, CAROL, DAVE]  # the broadcast, quiet hours and all
    assert await bed.stores.escalations.get("fp-disk") is None


async def test_a_route_picks_the_policy_and_a_zero_wait_runs_the_next_step_at_once(bed: Bed) -> None:
    await bed.notifier.handle(note(alert("Slow", "fp-slow", team="search")))
    assert [to for to, _ in bed.texts()] == [BOB, DAVE]
    assert bed.to(DAVE)[0].startswith("[escalated] FIRING 1 warning: Slow")


async def test_one_text_per_person_for_a_group(bed: Bed) -> None:
    await bed.notifier.handle(note(alert(), alert("DiskFull", "fp-disk2", instance="db2:9100")))
    [(to, body)] = bed.texts()
    assert to == ALICE and body.startswith("FIRING 2 warning: DiskFull\n1) db1:9100")
    assert (await bed.stores.contexts.get(ALICE)).alerts == ("fp-disk", "fp-disk2")


async def test_escalate_runs_the_next_step_now_and_the_wait_counts_from_then(bed: Bed) -> None:
    await bed.notifier.handle(note(alert()))
    bed.clock.advance(60)
    said = await bed.oncall.escalate("fp-disk", "alice")
    assert said == "step 2 of 4: called alice."
    assert len(bed.caller.calls) == 1
    timeline = await bed.stores.escalations.get("fp-disk")
    assert timeline is not None and timeline.due == T0 + 60 + 300
    assert ("escalated", 1, "alice") in [(e.kind, e.step, e.name) for e in timeline.events]
    bed.clock.advance(240)
    await bed.oncall.tick()  # the call's original due time passes: nothing runs twice
    assert len(bed.caller.calls) == 1 and len(bed.texts()) == 1
    await bed.oncall.acked("fp-disk", "alice", ALICE)
    assert await bed.oncall.escalate("fp-disk", "bob") == "was acked by alice; nothing to escalate."
    assert await bed.oncall.escalate("unknown", "bob") == (
        "follows no escalation policy (it was texted to everyone who gets alerts).")  # fmt: skip


async def test_escalate_past_the_last_step_says_so(bed: Bed) -> None:
    await bed.notifier.handle(note(alert()))
    for _ in range(3):
        await bed.oncall.escalate("fp-disk", "alice")
    assert (
        await bed.oncall.escalate("fp-disk", "alice") == "has run every step of its escalation (4); waiting for an ack."
    )


async def test_a_text_twilio_refuses_moves_on_at_once(bed: Bed) -> None:
    bed.sender.outcome = Delivery("+1555***0001", None, "failed", 1, "Twilio error 21211", 21211)
    await bed.notifier.handle(note(alert()))
    assert len(bed.caller.calls) == 1  # step 2 at once, no five-minute wait
    timeline = await bed.stores.escalations.get("fp-disk")
    assert timeline is not None and timeline.step == 2 and timeline.due == T0 + 300
    assert [(e.kind, e.step) for e in timeline.events] == [("failed", 0), ("call", 1)]


async def test_a_delivery_report_of_failure_moves_on_at_once_and_only_once(bed: Bed) -> None:
    await bed.notifier.handle(note(alert()))
    sid = "SM" + "0" * 31 + "1"
    bed.clock.advance(20)
    assert await bed.oncall.delivery_failed(sid, "undelivered", "30003")
    assert len(bed.caller.calls) == 1
    assert await bed.oncall.delivery_failed(sid, "undelivered", "30003")  # Twilio repeats its callback
    assert len(bed.caller.calls) == 1 and len(bed.texts()) == 1
    assert not await bed.oncall.delivery_failed("SM" + "f" * 32, "failed")  # not a page
    timeline = await bed.stores.escalations.get("fp-disk")
    assert timeline is not None
    assert [(e.kind, e.detail) for e in timeline.events if e.kind == "failed"] == [
        ("failed", "undelivered (error 30003)"), ("failed", "undelivered (error 30003)")]  # fmt: skip


async def test_an_unanswered_call_moves_on_at_once(bed: Bed) -> None:
    await bed.notifier.handle(note(alert()))
    bed.clock.advance(300)
    await bed.oncall.tick()
    token = bed.caller.calls[0][1].split("t=", 1)[1]
    await bed.oncall.call_ended(token, "completed")  # answered: the wait runs on
    assert len(bed.texts()) == 1
    await bed.oncall.call_ended(token, "no-answer")
    assert sorted(to for to, _ in bed.texts()[1:]) == [CAROL, DAVE]


async def test_key_presses_ack_silence_and_escalate(bed: Bed) -> None:
    await bed.notifier.handle(note(alert()))
    await bed.oncall.escalate("fp-disk", "alice")
    token = bed.caller.calls[0][1].split("t=", 1)[1]
    script = await bed.oncall.call_script(token)
    assert script == ("Operator page. Warning: DiskFull on db1:9100. Disk 97% full.", ALICE)
    assert await bed.oncall.pressed(token, "7") is None  # a key that does nothing: asked again
    assert await bed.oncall.pressed(token, "9") == "Escalated to the next step. Goodbye."
    assert sorted(to for to, _ in bed.texts()[1:]) == [CAROL, DAVE]
    assert await bed.oncall.pressed(token, "6") == "Silenced for one hour and acknowledged. Paging stopped. Goodbye."
    assert bed.writer.silences == [("DiskFull", 3600)]
    known = await bed.stores.alerts.get("fp-disk")
    assert known is not None and known.acked_by == "alice"
    assert bed.to(CAROL)[-1] == "DiskFull db1:9100 acked by alice: paging stopped."
    assert await bed.oncall.pressed(token, "4") == "Acknowledged. It was already acknowledged. Goodbye."
    assert await bed.oncall.pressed("x" * 24, "4") == "This page has ended. Goodbye."


async def test_a_viewer_cannot_act_by_key(tmp_path: Path) -> None:
    bed = make_bed(tmp_path)
    bed.oncall.policies.escalation["default"] = (bed.settings.escalation["default"][1].model_copy(
        update={"call": ("carol",)}),)  # fmt: skip
    await bed.notifier.handle(note(alert()))
    token = bed.caller.calls[0][1].split("t=", 1)[1]
    assert await bed.oncall.pressed(token, "4") == "Only operators can do that. Text the bot instead. Goodbye."
    timeline = await bed.stores.escalations.get("fp-disk")
    assert timeline is not None and timeline.state == "open"


async def test_take_gives_the_pager_and_tells_the_person_replaced(bed: Bed) -> None:
    taken = await bed.oncall.take("payments", BOB, 4 * 3600)
    assert taken == Taken("16:00 CET", ("alice",))
    assert bed.to(ALICE) == ["bob took the payments pager from you until 16:00 CET."]
    await bed.notifier.handle(note(alert()))
    assert bed.texts()[-1][0] == BOB  # the first step reaches whoever holds the pager now
    assert await bed.oncall.who("payments") == ["payments: bob (covering for alice) until 16:00 CET, then alice"]
    taken = await bed.oncall.take("payments", ALICE, None)  # to the end of the shift
    assert taken == Taken("Mon 09:00 CET", ("bob",))
    assert await bed.oncall.take("billing", ALICE, None) == "No schedule named billing."


async def test_steps_run_once_when_runners_race(bed: Bed) -> None:
    runners = [bed.oncall, *(bed.other() for _ in range(4))]  # five instances, or tickers during a hand-over
    await asyncio.gather(*(r.route(note(alert()), changes_of(alert())) for r in runners))
    assert len(bed.texts()) == 1
    bed.clock.advance(300)
    await asyncio.gather(*(r.tick() for r in runners))
    assert len(bed.caller.calls) == 1 and len(bed.texts()) == 1
    bed.clock.advance(300)
    await asyncio.gather(*(r.tick() for r in runners))
    assert len(bed.caller.calls) == 1 and sorted(to for to, _ in bed.texts()) == [ALICE, CAROL, DAVE]
    said = await asyncio.gather(*(r.escalate("fp-disk", "bob") for r in runners[:2]))
    assert said[0] == "step 4 of 4: texted bob, carol, dave."
    assert said[1] in ("is being paged right now; try again in a minute.",
                       "has run every step of its escalation (4); waiting for an ack.")  # fmt: skip
    assert len(bed.texts()) == 6


def changes_of(*alerts: AlertEvent):  # type: ignore[no-untyped-def]
    from bot.alerting.model import Changes

    return Changes(firing=tuple(a for a in alerts if a.status == "firing"))


async def test_a_runner_that_dies_mid_step_is_taken_over_without_paging_twice(bed: Bed) -> None:
    await bed.notifier.handle(note(alert()))
    bed.clock.advance(300)
    await bed.oncall.tick()  # the call
    bed.clock.advance(300)
    # a runner claims step 3 (text carol and dave), reaches carol, and dies before completing it
    claimed = await bed.stores.escalations.claim("fp-disk", None, bed.clock(), "dead", bed.clock() + CLAIM_S)
    assert claimed is not None and claimed.step == 2
    await bed.stores.escalations.record("fp-disk", Event(bed.clock(), "sms", 2, "carol", CAROL, "queued"))
    await bed.oncall.tick()  # the claim is live: nobody else runs the step
    assert len(bed.texts()) == 1
    bed.clock.advance(CLAIM_S + 1)
    await bed.oncall.tick()  # it lapsed: the rest of the step runs, dave only
    assert [to for to, _ in bed.texts()[1:]] == [DAVE]
    assert not await bed.stores.escalations.complete("fp-disk", 2, "dead", None)  # the dead runner lost its claim
    timeline = await bed.stores.escalations.get("fp-disk")
    assert timeline is not None and timeline.step == 3


async def test_undoing_an_ack_resumes_the_escalation(bed: Bed) -> None:
    await bed.notifier.handle(note(alert()))
    await bed.oncall.acked("fp-disk", "alice", ALICE)
    bed.clock.advance(600)
    await bed.oncall.tick()
    assert bed.caller.calls == []
    assert await bed.oncall.unacked("fp-disk")
    await bed.oncall.tick()  # the call was due meanwhile: it runs now
    assert len(bed.caller.calls) == 1


async def test_a_step_that_reaches_nobody_moves_on(tmp_path: Path) -> None:
    bed = make_bed(tmp_path)
    bed.oncall.policies.users._by_name.pop("alice")  # alice left the team: the schedule names nobody reachable
    await bed.notifier.handle(note(alert()))
    timeline = await bed.stores.escalations.get("fp-disk")
    assert timeline is not None and [(e.kind, e.step) for e in timeline.events][:1] == [("nobody", 0)]
    assert timeline.step >= 2  # the call step (also to the schedule) reached nobody either
    assert sorted(to for to, _ in bed.texts()) == [CAROL, DAVE]


async def test_the_store_failing_falls_back_to_the_broadcast(bed: Bed) -> None:
    from bot.state.protocols import StoreUnavailable

    async def down(*args: object, **kwargs: object) -> bool:
        raise StoreUnavailable("Redis is unreachable")

    bed.stores.escalations.start = down  # type: ignore[method-assign]
    await bed.notifier.handle(note(alert(severity=Severity.CRITICAL)))
    assert sorted(to for to, _ in bed.texts()) == [ALICE, BOB, CAROL, DAVE]


async def test_notes_say_which_alerts_a_call_was_about(bed: Bed) -> None:
    await bed.notifier.handle(note(alert()))
    await bed.oncall.escalate("fp-disk", "alice")
    token = bed.caller.calls[0][1].split("t=", 1)[1]
    kept = await bed.stores.escalations.recall(f"call:{token}")
    assert kept is not None and json.loads(kept) == {"n": ALICE, "s": {"fp-disk": 1}}


async def test_a_page_over_the_persons_text_budget_is_held_and_recorded(bed: Bed) -> None:
    for _ in range(1_000):  # use up alice's budget as an alert storm would
        if await bed.stores.budget.take(ALICE) == "hold":
            break
    else:
        raise AssertionError("the budget never held")
    await bed.notifier.handle(note(alert()))
    assert bed.to(ALICE) == []
    timeline = await bed.stores.escalations.get("fp-disk")
    assert timeline is not None
    assert [(e.kind, e.step, e.name, e.detail) for e in timeline.events] == [
        ("held", 0, "alice", "over the text budget")
    ]
