"""Recipients: who gets an alert text (allowlist, subscription, minimum severity, quiet hours in their own
time zone), the per-number send budget in a storm, and dropping repeated deliveries."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from bot.alerting.model import AlertEvent, Notification, Severity
from bot.alerting.recipients import RecipientRule, in_quiet_hours, make_rule, rules_from_users, wants
from bot.alerting.sources import parse_alertmanager
from bot.alerting.texts import format_firing, format_summary, numbered
from bot.settings import load_settings, parse_quiet_hours
from bot.sms.encoding import segment_count
from bot.state.memory.delivery import Deduplicator, SendBudget

ALICE, BOB, MALLORY = "+15551230001", "+15551230002", "+15559990000"
ALLOWLIST = {ALICE: "alice", BOB: "bob"}
FIXTURES = Path(__file__).parent.parent / "fixtures" / "alertmanager"


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def notification(severity: Severity, status: str = "firing") -> Notification:
    event = AlertEvent(
        fingerprint="fp", name="X", labels={}, status="firing" if status == "firing" else "resolved", severity=severity
    )
    return Notification(source="test", group_key="g", status=event.status, alerts=(event,))


# --- quiet hours ----------------------------------------------------------------------------------------------

VALID_QUIET_HOURS = [
    pytest.param("22:00-07:00", (time(22), time(7)), id="over-midnight"),
    pytest.param("9:30-17:00", (time(9, 30), time(17)), id="single-digit-hour"),
    pytest.param(" 22:00 - 07:00 ", (time(22), time(7)), id="spaces"),
    pytest.param("00:00-06:00", (time(0), time(6)), id="from-midnight"),
    pytest.param("23:59-00:00", (time(23, 59), time(0)), id="last-minute"),
]


@pytest.mark.parametrize(("text", "span"), VALID_QUIET_HOURS)
def test_parse_quiet_hours(text: str, span: tuple[time, time]) -> None:
    assert parse_quiet_hours(text) == span


INVALID_QUIET_HOURS = [
    pytest.param("22:00", "expected HH:MM-HH:MM, e.g. 22:00-07:00", id="one-time"),
    pytest.param("", "expected HH:MM-HH:MM", id="empty"),
    pytest.param("22:00-07:00-08:00", "expected HH:MM-HH:MM", id="three-times"),
    pytest.param("22-07", "'22' is not HH:MM", id="hours-only"),
    pytest.param("10pm-7am", "'10pm' is not HH:MM", id="am-pm"),
    pytest.param("25:00-07:00", "25:00 is not a time of day (00:00 to 23:59)", id="hour-25"),
    pytest.param("22:00-24:00", "24:00 is not a time of day", id="hour-24"),
    pytest.param("22:60-07:00", "22:60 is not a time of day", id="minute-60"),
    pytest.param("07:00-07:00", "start and end are the same", id="empty-span"),
]


@pytest.mark.parametrize(("text", "message"), INVALID_QUIET_HOURS)
def test_parse_quiet_hours_errors_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError, match="quiet hours") as caught:
        parse_quiet_hours(text)
    assert message in str(caught.value)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


QUIET = [
    # Berlin is UTC+1 in winter, UTC+2 in summer (from 2026-03-29 01:00 UTC).
    pytest.param("Europe/Berlin", "22:00-07:00", "2026-01-15 20:59", False, id="berlin-winter-2159"),
    pytest.param("Europe/Berlin", "22:00-07:00", "2026-01-15 21:00", True, id="berlin-winter-2200"),
    pytest.param("Europe/Berlin", "22:00-07:00", "2026-01-15 23:30", True, id="berlin-winter-0030"),
    pytest.param("Europe/Berlin", "22:00-07:00", "2026-01-16 05:59", True, id="berlin-winter-0659"),
    pytest.param("Europe/Berlin", "22:00-07:00", "2026-01-16 06:00", False, id="berlin-winter-0700"),
    pytest.param("Europe/Berlin", "22:00-07:00", "2026-07-15 20:00", True, id="berlin-summer-2200"),
    pytest.param("Europe/Berlin", "22:00-07:00", "2026-07-15 21:00", True, id="berlin-summer-2300"),
    pytest.param("Europe/Berlin", "22:00-07:00", "2026-07-16 05:00", False, id="berlin-summer-0700"),
    pytest.param("Europe/Berlin", "22:00-07:00", "2026-03-29 00:59", True, id="berlin-before-dst-0159"),
    pytest.param("Europe/Berlin", "22:00-07:00", "2026-03-29 04:59", True, id="berlin-dst-day-0659"),
    pytest.param("Europe/Berlin", "22:00-07:00", "2026-03-29 05:00", False, id="berlin-dst-day-0700"),
    pytest.param("America/Los_Angeles", "22:00-07:00", "2026-01-15 06:30", True, id="la-2230-previous-day"),
    pytest.param("America/Los_Angeles", "22:00-07:00", "2026-01-15 15:00", False, id="la-0700-end-excluded"),
    pytest.param("America/Los_Angeles", "22:00-07:00", "2026-01-15 16:00", False, id="la-0800"),
    pytest.param("Asia/Kolkata", "22:00-07:00", "2026-01-15 16:29", False, id="kolkata-2159-half-hour-zone"),
    pytest.param("Asia/Kolkata", "22:00-07:00", "2026-01-15 16:30", True, id="kolkata-2200"),
    pytest.param("UTC", "09:00-17:00", "2026-01-15 08:59", False, id="daytime-before"),
    pytest.param("UTC", "09:00-17:00", "2026-01-15 09:00", True, id="daytime-start"),
    pytest.param("UTC", "09:00-17:00", "2026-01-15 17:00", False, id="daytime-end-excluded"),
]


@pytest.mark.parametrize(("zone", "span", "now_utc", "quiet"), QUIET)
def test_quiet_hours_are_read_on_the_persons_clock(zone: str, span: str, now_utc: str, quiet: bool) -> None:
    rule = make_rule(ALICE, "alice", quiet_hours=span, timezone=zone)
    assert in_quiet_hours(rule, utc(now_utc)) is quiet


def test_the_same_moment_in_another_offset_is_the_same_answer() -> None:
    rule = make_rule(ALICE, quiet_hours="22:00-07:00", timezone="Europe/Berlin")
    moment = utc("2026-01-15 21:30")
    assert (
        in_quiet_hours(rule, moment) is in_quiet_hours(rule, moment.astimezone(timezone(timedelta(hours=-5)))) is True
    )


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        in_quiet_hours(make_rule(ALICE, quiet_hours="22:00-07:00"), datetime(2026, 1, 15, 23))


# --- wants ------------------------------------------------------------------------------------------------------

NIGHT = utc("2026-01-15 23:30")  # 00:30 in Berlin
DAY = utc("2026-01-15 11:00")
NIGHT_OWL = make_rule(
    ALICE, "alice", "operator", min_severity="warning", quiet_hours="22:00-07:00", timezone="Europe/Berlin"
)
CRITICAL_ONLY = make_rule(BOB, "bob", min_severity="critical")
EVERYTHING = make_rule(ALICE, min_severity="info")

WANTS = [
    pytest.param(NIGHT_OWL, Severity.WARNING, DAY, True, True, id="warning-by-day"),
    pytest.param(NIGHT_OWL, Severity.WARNING, NIGHT, True, False, id="warning-in-quiet-hours"),
    pytest.param(NIGHT_OWL, Severity.CRITICAL, NIGHT, True, True, id="critical-through-quiet-hours"),
    pytest.param(NIGHT_OWL, Severity.INFO, DAY, True, False, id="below-minimum"),
    pytest.param(NIGHT_OWL, Severity.CRITICAL, DAY, False, False, id="unsubscribed"),
    pytest.param(NIGHT_OWL, Severity.CRITICAL, NIGHT, False, False, id="unsubscribed-even-critical"),
    pytest.param(CRITICAL_ONLY, Severity.WARNING, DAY, True, False, id="critical-only-skips-warning"),
    pytest.param(CRITICAL_ONLY, Severity.CRITICAL, NIGHT, True, True, id="critical-only-gets-critical"),
    pytest.param(EVERYTHING, Severity.INFO, NIGHT, True, True, id="no-quiet-hours"),
    pytest.param(make_rule(MALLORY, min_severity="info"), Severity.CRITICAL, DAY, True, False, id="not-allowlisted"),
]


@pytest.mark.parametrize(("rule", "severity", "now", "subscribed", "expected"), WANTS)
def test_wants(rule: RecipientRule, severity: Severity, now: datetime, subscribed: bool, expected: bool) -> None:
    assert wants(rule, notification(severity), now, subscribed, allowlist=ALLOWLIST) is expected


def test_a_resolution_reaches_whoever_its_page_reached() -> None:
    critical_resolved = notification(Severity.CRITICAL, status="resolved")
    assert wants(NIGHT_OWL, critical_resolved, NIGHT, True, allowlist=ALLOWLIST)
    assert wants(CRITICAL_ONLY, critical_resolved, DAY, True, allowlist=ALLOWLIST)


def test_a_group_is_judged_by_its_most_severe_alert() -> None:
    mixed = parse_alertmanager((FIXTURES / "webhook_v4_firing.json").read_bytes())
    assert wants(CRITICAL_ONLY, mixed, NIGHT, True, allowlist=ALLOWLIST)
    resolved_warning = parse_alertmanager((FIXTURES / "webhook_v4_resolved.json").read_bytes())
    assert not wants(CRITICAL_ONLY, resolved_warning, DAY, True, allowlist=ALLOWLIST)


def test_a_rule_for_a_number_removed_from_the_allowlist_sends_nothing() -> None:
    assert not wants(EVERYTHING, notification(Severity.CRITICAL), DAY, True, allowlist={BOB: "bob"})


RULE_ERRORS = [
    pytest.param({"min_severity": "urgent"}, "min_severity must be one of info, warning, critical", id="severity-word"),
    pytest.param({"timezone": "Europe/Berlln"}, "unknown time zone 'Europe/Berlln'", id="zone-typo"),
    pytest.param({"timezone": "../etc/passwd"}, "unknown time zone", id="zone-path"),
    pytest.param({"quiet_hours": "late"}, "quiet hours 'late'", id="quiet-hours"),
]


@pytest.mark.parametrize(("options", "message"), RULE_ERRORS)
def test_make_rule_errors(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        make_rule(ALICE, **options)
    assert message in str(caught.value)


def test_make_rule_reads_config_words() -> None:
    rule = make_rule(
        ALICE,
        "alice",
        "operator",
        min_severity=" Critical ",
        quiet_hours="23:00-06:30",
        timezone="Asia/Tokyo",
        subscribed_by_default=False,
    )
    assert rule == RecipientRule(
        ALICE, "alice", "operator", Severity.CRITICAL, (time(23), time(6, 30)), "Asia/Tokyo", False
    )
    with pytest.raises(ValueError, match="same time"):
        RecipientRule(ALICE, "a", "viewer", quiet_hours=(time(1), time(1)))


# --- send budget ------------------------------------------------------------------------------------------------


def test_a_storm_of_500_costs_each_number_its_budget_and_no_more() -> None:
    clock = FakeClock()
    budget = SendBudget(max_texts=10, window_s=600, clock=clock)
    decisions: Counter[str] = Counter()
    for _ in range(500):
        decisions[budget.take(ALICE)] += 1
        clock.advance(0.5)  # 500 alerts over ~4 minutes, inside one window
    assert decisions == {"send": 9, "summary": 1, "hold": 490}
    assert decisions["send"] + decisions["summary"] == budget.max_texts
    assert budget.holding(ALICE)
    assert budget.take(BOB) == "send"  # another number has its own budget


def test_the_summary_is_given_exactly_once_and_the_budget_refills_after_the_window() -> None:
    clock = FakeClock()
    budget = SendBudget(max_texts=3, window_s=600, clock=clock)
    assert [budget.take(ALICE) for _ in range(6)] == ["send", "send", "summary", "hold", "hold", "hold"]
    clock.advance(599)
    assert budget.take(ALICE) == "hold"
    clock.advance(1)
    assert not budget.holding(ALICE)
    assert [budget.take(ALICE) for _ in range(4)] == ["send", "send", "summary", "hold"]


def test_the_window_slides() -> None:
    """A steady trickle below the budget is never held; any `window_s` holds at most `max_texts` texts."""
    clock = FakeClock()
    budget = SendBudget(max_texts=3, window_s=60, clock=clock)
    for _ in range(30):
        assert budget.take(ALICE) == "send"
        clock.advance(31)  # two texts a window at most
    times: list[float] = []
    for _ in range(200):
        if budget.take(BOB) != "hold":
            times.append(clock())
        clock.advance(7)
    assert max(sum(1 for t in times if start <= t < start + 60) for start in times) <= 3


def test_budget_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        SendBudget(max_texts=1, window_s=60)
    with pytest.raises(ValueError, match="positive"):
        SendBudget(max_texts=5, window_s=0)


def test_the_budget_forgets_the_idlest_numbers_beyond_its_size() -> None:
    budget = SendBudget(max_texts=2, window_s=600, clock=FakeClock(), max_numbers=2)
    assert [budget.take(ALICE), budget.take(ALICE), budget.take(ALICE)] == ["send", "summary", "hold"]
    budget.take(BOB)
    budget.take(MALLORY)  # ALICE was used least recently: forgotten
    assert budget.take(ALICE) == "send"


# --- dedup ------------------------------------------------------------------------------------------------------


def test_deduplicator_within_and_after_the_ttl() -> None:
    clock = FakeClock()
    seen = Deduplicator(ttl_s=300, max_keys=100, clock=clock)
    assert seen.seen("a") is False
    clock.advance(299)
    assert seen.seen("a") is True  # a repeat does not extend the memory …
    clock.advance(1)
    assert seen.seen("a") is False  # … so after ttl_s from the first sighting it is news again
    assert seen.seen("a") is True


def test_deduplicator_bounds_its_memory_and_never_dedups_an_empty_key() -> None:
    clock = FakeClock()
    seen = Deduplicator(ttl_s=300, max_keys=3, clock=clock)
    for key in "abcd":
        assert seen.seen(key) is False
    assert len(seen) == 3
    assert seen.seen("a") is False  # the oldest went first
    assert seen.seen("") is False and seen.seen("") is False
    clock.advance(301)
    seen.seen("z")
    assert len(seen) == 1


def test_deduplicator_drops_a_redelivered_captured_payload() -> None:
    seen = Deduplicator(ttl_s=900, clock=FakeClock())
    bodies = ["firing", "firing", "firing_with_one_resolved", "firing", "resolved", "resolved"]
    fresh = [
        name
        for name in bodies
        if not seen.seen(parse_alertmanager((FIXTURES / f"webhook_v4_{name}.json").read_bytes()).delivery_key)
    ]
    assert fresh == ["firing", "firing_with_one_resolved", "resolved"]


# --- all of it: a storm -----------------------------------------------------------------------------------------


def test_a_storm_of_500_alert_groups_keeps_every_alert_and_texts_within_the_budget() -> None:
    """The caller's loop as it is meant to be written: dedup, recipients, budget, texts; history keeps all."""
    clock = FakeClock()
    budget = SendBudget(max_texts=5, window_s=3600, clock=clock)
    dedup = Deduplicator(ttl_s=900, clock=clock)
    rules = [NIGHT_OWL, CRITICAL_ONLY]
    history: list[Notification] = []
    texts: dict[str, list[str]] = {ALICE: [], BOB: []}
    held: dict[str, Counter[str]] = {ALICE: Counter(), BOB: Counter()}
    template = (FIXTURES / "webhook_v4_firing.json").read_text()
    now = DAY
    for i in range(500):
        name = "HighCPU" if i % 5 else "DiskFull"
        body = (
            template.replace('"DiskFull"', f'"{name}"')
            .replace("1751650d45bf7d6b", f"{i:016x}")
            .replace("70bd263dc713630c", f"{i + 1000:016x}")
        )
        for _ in range(2 if i % 7 == 0 else 1):  # some deliveries arrive twice
            delivered = parse_alertmanager(body.encode())
            if dedup.seen(delivered.delivery_key):
                continue
            history.append(delivered)
            for rule in rules:
                if not wants(rule, delivered, now, rule.subscribed_by_default, allowlist=ALLOWLIST):
                    continue
                decision = budget.take(rule.number)
                if decision == "send":
                    texts[rule.number].append(format_firing(delivered, numbered(delivered.alerts), now))
                else:
                    held[rule.number].update(a.name for a in delivered.alerts)
                    if decision == "summary":
                        count = sum(held[rule.number].values())
                        texts[rule.number].append(
                            format_summary(held[rule.number], count, paused_for_s=budget.window_s)
                        )
        clock.advance(1)
    assert len(history) == 500 and sum(len(n.alerts) for n in history) == 1000  # nothing lost
    for number in (ALICE, BOB):
        assert len(texts[number]) == 5
        assert (
            texts[number][-1]
            == "Alert storm: 2 more alerts (HighCPU 2) not texted. Texts paused 1h. Text 'alerts' for the list."
        )
        assert all(segment_count(text) <= 3 for text in texts[number])
        assert sum(held[number].values()) == 1000 - 4 * 2


def test_rules_come_from_the_allowlist_config() -> None:
    settings = load_settings(
        env_file=None,
        environ={
            "OPERATOR_USERS": json.dumps(
                {
                    ALICE: {
                        "name": "alice",
                        "role": "operator",
                        "min_severity": "critical",
                        "quiet_hours": "22:00-07:00",
                        "timezone": "Europe/Berlin",
                    },
                    BOB: {"name": "bob", "subscribed": False},
                }
            )
        },
    )
    rules = rules_from_users(settings.users)
    assert rules == {
        ALICE: RecipientRule(ALICE, "alice", "operator", Severity.CRITICAL, (time(22), time(7)), "Europe/Berlin", True),
        BOB: RecipientRule(BOB, "bob", "viewer", Severity.WARNING, None, "UTC", False),
    }
