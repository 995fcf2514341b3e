"""Rotations and overrides: who holds a schedule's pager at a moment, on the schedule's own clock, across
hand-offs and daylight-saving changes; and the on-call configuration's checks."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.oncall.config import Schedule
from bot.oncall.policies import Policies
from bot.oncall.schedules import (
    Override,
    Rotation,
    describe,
    holder,
    replaced_by,
    segment_at,
    segments,
    shifts,
)
from bot.settings import ConfigError, Settings, catalog_settings, load_settings
from tests.examples import examples

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def at(text: str, zone: ZoneInfo = BERLIN) -> float:
    """A local wall-clock time ("2026-03-29 09:00") as epoch seconds."""
    return datetime.fromisoformat(text).replace(tzinfo=zone).timestamp()


def local(moment: float, zone: ZoneInfo = BERLIN) -> str:
    return datetime.fromtimestamp(moment, zone).strftime("%Y-%m-%d %H:%M %Z")


def rotation(members: list[str], shift: str, handoff: str, timezone: str = "Europe/Berlin") -> Rotation:
    return Rotation("payments", Schedule(members=members, shift=shift, handoff=handoff, timezone=timezone))


# --- the rotation -----------------------------------------------------------------------------------------


def test_members_take_turns_from_the_handoff_and_before_it() -> None:
    weekly = rotation(["alice", "bob", "carol"], "1w", "2026-01-05 09:00")
    assert holder(weekly, [], at("2026-01-05 09:00")) == "alice"
    assert holder(weekly, [], at("2026-01-12 08:59")) == "alice"
    assert holder(weekly, [], at("2026-01-12 09:00")) == "bob"
    assert holder(weekly, [], at("2026-01-26 09:00")) == "alice"  # round again
    assert holder(weekly, [], at("2026-01-05 08:59")) == "carol"  # before the first hand-off it runs backwards


@pytest.mark.parametrize(
    ("zone", "spring", "autumn"),
    [
        pytest.param("Europe/Berlin", "2026-03-29", "2026-10-25", id="berlin"),
        pytest.param("America/New_York", "2026-03-08", "2026-11-01", id="new-york"),
    ],
)
def test_a_daily_handoff_at_nine_stays_at_nine_local_across_dst(zone: str, spring: str, autumn: str) -> None:
    daily = rotation(["alice", "bob"], "1d", "2026-01-01 09:00", zone)
    tz = ZoneInfo(zone)
    for day in (spring, autumn):
        before = datetime.fromisoformat(f"{day} 09:00") - timedelta(days=1)
        for offset in range(3):
            start = (before + timedelta(days=offset)).replace(tzinfo=tz).timestamp()
            shift = segment_at(daily, [], start + 1)
            assert local(shift.start, tz).split()[1] == "09:00"
            assert local(shift.end, tz).split()[1] == "09:00"
    spring_shift = segment_at(daily, [], at(f"{spring} 10:00", tz))
    autumn_shift = segment_at(daily, [], at(f"{autumn} 10:00", tz))
    assert spring_shift.end - spring_shift.start == 24 * 3600  # the day after the change is whole again
    day_before_spring = segment_at(daily, [], at(f"{spring} 08:00", tz))
    day_before_autumn = segment_at(daily, [], at(f"{autumn} 08:00", tz))
    assert day_before_spring.end - day_before_spring.start == 23 * 3600  # the night the clocks skip an hour
    assert day_before_autumn.end - day_before_autumn.start == 25 * 3600  # … and repeat one
    assert autumn_shift.end - autumn_shift.start == 24 * 3600


def test_twelve_hour_shifts_keep_their_clock_times_across_dst() -> None:
    halves = rotation(["day", "night"], "12h", "2026-03-01 08:00")
    assert [local(s.start) for s in shifts(halves, at("2026-03-28 07:00"), at("2026-03-30 09:00"))] == [
        "2026-03-27 20:00 CET", "2026-03-28 08:00 CET", "2026-03-28 20:00 CET", "2026-03-29 08:00 CEST",
        "2026-03-29 20:00 CEST", "2026-03-30 08:00 CEST",
    ]  # fmt: skip
    assert holder(halves, [], at("2026-03-29 07:59")) == "night"
    assert holder(halves, [], at("2026-03-29 08:00")) == "day"


def test_an_hourly_shift_in_the_skipped_hour_lasts_no_time_and_nobody_holds_it() -> None:
    hourly = rotation(["a", "b", "c"], "1h", "2026-03-29 00:00")
    starts = [(s.member, local(s.start)) for s in shifts(hourly, at("2026-03-29 00:00"), at("2026-03-29 05:00"))]
    # 02:00 does not exist that night: shift 2 starts and ends at 03:00 CEST, so "c" is skipped, not "a" doubled
    assert starts == [("a", "2026-03-29 00:00 CET"), ("b", "2026-03-29 01:00 CET"), ("a", "2026-03-29 03:00 CEST"),
                      ("b", "2026-03-29 04:00 CEST")]  # fmt: skip
    assert holder(hourly, [], at("2026-03-29 03:30")) == "a"


@settings(max_examples=examples(200), deadline=None)
@given(
    zone=st.sampled_from(["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata", "UTC"]),
    hours=st.integers(1, 24 * 14),
    start=st.integers(0, 3 * 365 * 86400),
)
def test_boundaries_never_go_backwards_and_every_moment_has_one_holder(zone: str, hours: int, start: int) -> None:
    spec = rotation(["a", "b", "c"], f"{hours}h", "2025-01-01 09:30", zone)
    moment = at("2025-01-01 00:00", ZoneInfo(zone)) + start
    k = spec.index_at(moment)
    assert spec.boundary(k) <= moment < spec.boundary(k + 1)
    assert spec.boundary(k - 1) <= spec.boundary(k)
    assert spec.boundary(k + 1) <= spec.boundary(k + 2)


# --- overrides --------------------------------------------------------------------------------------------


def test_an_override_across_a_handoff_holds_through_it_and_both_people_are_replaced() -> None:
    daily = rotation(["alice", "bob"], "1d", "2026-01-05 09:00")
    now = at("2026-01-06 07:00")
    assert holder(daily, [], now) == "alice"  # 2026-01-05 09:00 to 2026-01-06 09:00 is alice's
    take = Override("payments", "carol", now, now + 4 * 3600, now, "carol")
    assert holder(daily, [take], at("2026-01-06 08:59")) == "carol"
    assert holder(daily, [take], at("2026-01-06 10:59")) == "carol"  # across bob's hand-off
    assert holder(daily, [take], at("2026-01-06 11:00")) == "bob"
    lost = replaced_by(daily, [], take)
    assert [(s.member, local(s.start), local(s.end)) for s in lost] == [
        ("alice", "2026-01-06 07:00 CET", "2026-01-06 09:00 CET"),
        ("bob", "2026-01-06 09:00 CET", "2026-01-06 11:00 CET"),
    ]
    assert describe(daily, [take], now) == "payments: carol (covering for alice) until 11:00 CET, then bob"
    assert describe(daily, [], at("2026-01-06 11:00")) == "payments: bob until Wed 09:00 CET, then alice"


def test_an_override_over_the_night_the_clocks_change_ends_on_the_local_clock() -> None:
    daily = rotation(["alice", "bob"], "1d", "2026-03-01 09:00")
    now = at("2026-03-28 22:00")
    shift = segment_at(daily, [], now)
    take = Override("payments", "carol", now, shift.end, now, "carol")  # "take payments": to the end of the shift
    assert local(take.end) == "2026-03-29 09:00 CEST"
    assert take.end - now == 10 * 3600  # 22:00 CET to 09:00 CEST is ten hours, not eleven
    assert holder(daily, [take], at("2026-03-29 08:59")) == "carol"
    assert holder(daily, [take], at("2026-03-29 09:00")) == shift_after(daily, shift.member)
    assert (
        describe(daily, [take], now)
        == f"payments: carol (covering for {shift.member}) until Sun 09:00 CEST, then {shift_after(daily, shift.member)}"
    )


def shift_after(daily: Rotation, member: str) -> str:
    return "bob" if member == "alice" else "alice"


def test_the_latest_override_wins_where_they_overlap_and_ended_ones_do_not_count() -> None:
    weekly = rotation(["alice", "bob"], "1w", "2026-01-05 09:00")
    now = at("2026-01-06 12:00")
    first = Override("payments", "carol", now, now + 6 * 3600, now, "carol")
    second = Override("payments", "dave", now + 3600, now + 2 * 3600, now + 60, "dave")
    gone = Override("payments", "erin", now - 7200, now - 3600, now - 7200, "erin")
    overrides = [first, second, gone]
    assert [holder(weekly, overrides, now + h * 3600) for h in (0, 1, 2, 6)] == ["carol", "dave", "carol", "alice"]
    assert [(s.member, s.covering) for s in segments(weekly, overrides, now, 4)] == [
        ("carol", "alice"), ("dave", "alice"), ("carol", "alice"), ("alice", None)]  # fmt: skip


# --- the configuration ------------------------------------------------------------------------------------

USERS = """\
users:
  "+15551230001": {name: alice, role: operator}
  "+15551230002": {name: bob, role: operator}
  "+15551230003": {name: carol, role: viewer}
"""


def load(tmp_path: Path, text: str) -> Settings:
    path = tmp_path / "operator.yaml"
    path.write_text(USERS + text, "utf-8")
    return load_settings(path, environ={}, env_file=None)


def refused(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    assert "+1555" not in str(caught.value)  # never a number in a configuration error
    return str(caught.value)


GOOD = """\
schedules:
  Payments: {members: [alice, bob], shift: 1w, handoff: "2026-01-05 09:00", timezone: Europe/Berlin}
escalation:
  default:
    - {notify: payments, wait: 5m}
    - {call: payments, wait: 30s}
    - {notify: [carol, bob], wait: 0}
    - {notify: all}
  quiet:
    - notify: carol
routes:
  - {match: {team: payments}, policy: Quiet}
"""


def test_a_good_configuration_is_typed(tmp_path: Path) -> None:
    settings = load(tmp_path, GOOD)
    assert list(settings.schedules) == ["payments"]  # names as people text them
    spec = settings.schedules["payments"]
    assert spec.shift == 7 * 86400 and spec.handoff == datetime(2026, 1, 5, 9, 0) and spec.members == ("alice", "bob")
    steps = settings.escalation["default"]
    assert [(s.action, s.targets, s.wait) for s in steps] == [
        ("sms", ("payments",), 300), ("call", ("payments",), 30), ("sms", ("carol", "bob"), 0), ("sms", ("all",), 300)]  # fmt: skip
    assert settings.routes[0].policy == "quiet"
    policies = Policies(settings.schedules, settings.escalation, settings.routes, settings.users)
    assert policies.policy_for({"team": "payments", "severity": "critical"}) == "quiet"
    assert policies.policy_for({"team": "search"}) == "default"
    assert settings.catalog().schedules == ("payments",)


def test_without_a_default_policy_unrouted_alerts_are_broadcast(tmp_path: Path) -> None:
    settings = load(tmp_path, "escalation: {night: [{notify: bob}]}\nroutes: [{match: {team: db}, policy: night}]\n")
    policies = Policies(settings.schedules, settings.escalation, settings.routes, settings.users)
    assert policies.policy_for({"team": "db"}) == "night"
    assert policies.policy_for({"team": "web"}) is None


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        pytest.param("schedules: {p: {members: [alice, carl], shift: 1d, handoff: '2026-01-05 09:00'}}",
                     "schedules: Value error, p.members: 'carl' is not a user name in users: (known: alice, bob, carol)",
                     id="unknown-member"),
        pytest.param("schedules: {p: {members: [alice], shift: 30m, handoff: '2026-01-05 09:00'}}",
                     "schedules.p.shift: Value error, shift must be at least 1h", id="short-shift"),
        pytest.param("schedules: {p: {members: [alice], shift: often, handoff: '2026-01-05 09:00'}}",
                     "schedules.p.shift: Value error, shift is not a duration", id="bad-shift"),
        pytest.param("schedules: {p: {members: [alice], shift: 1d, handoff: 'monday morning'}}",
                     "schedules.p.handoff: Value error, handoff 'monday morning' is not a local date and time",
                     id="bad-handoff"),
        pytest.param("schedules: {p: {members: [alice], shift: 1d, handoff: '2026-01-05 09:00', timezone: Mars/Base}}",
                     "schedules.p.timezone: Value error, unknown time zone 'Mars/Base'", id="bad-zone"),
        pytest.param("schedules: {p: {members: [alice, alice], shift: 1d, handoff: '2026-01-05 09:00'}}",
                     "alice listed twice", id="member-twice"),
        pytest.param("schedules: {p: {members: [alice], shift: 1d, handoff: '2026-01-05 09:00', shfit: 2d}}",
                     "schedules.p.shfit: unknown (did you mean shift?)", id="unknown-key"),
        pytest.param("escalation: {default: [{notify: payments}]}",
                     "default step 1 (notify): 'payments' is neither a schedule nor a user", id="unknown-target"),
        pytest.param("escalation: {default: [{call: [alice, dave]}]}",
                     "default step 1 (call): 'dave' is neither a schedule nor a user", id="unknown-call-target"),
        pytest.param("escalation: {default: [{notify: alice, call: bob}]}",
                     "a step either notifies or calls", id="both-actions"),
        pytest.param("escalation: {default: [{wait: 5m}]}", "a step either notifies or calls", id="no-action"),
        pytest.param("escalation: {default: [{notify: [all, bob]}]}", "'all' already means everyone", id="all-and-more"),
        pytest.param("escalation: {default: [{notify: alice, wait: soon}]}", "wait is not a duration", id="bad-wait"),
        pytest.param("escalation: {default: []}", "default: a policy needs at least one step", id="empty-policy"),
        pytest.param("schedules: {alice: {members: [bob], shift: 1d, handoff: '2026-01-05 09:00'}}\n"
                     "escalation: {default: [{notify: alice}]}", "'alice' is both a schedule and a user", id="ambiguous"),
        pytest.param("escalation: {default: [{notify: alice}]}\nroutes: [{match: {team: db}, policy: nightly}]",
                     "routes: Value error, route 1: no escalation policy named 'nightly' (known: default)",
                     id="unknown-policy"),
        pytest.param("routes: [{match: {team: db}}]", "routes.0.policy: Field required", id="route-without-policy"),
    ],
)  # fmt: skip
def test_configuration_errors_name_the_key_at_fault(tmp_path: Path, config: str, expected: str) -> None:
    assert expected in refused(tmp_path, config + "\n")


def test_a_name_two_users_share_cannot_be_paged(tmp_path: Path) -> None:
    path = tmp_path / "operator.yaml"
    path.write_text('users: {"+15551230001": {name: sam}, "+15551230002": {name: Sam}}\n'
                    "escalation: {default: [{notify: sam}]}\n", "utf-8")  # fmt: skip
    with pytest.raises(ConfigError, match="'sam' is the name of 2 users"):
        load_settings(path, environ={}, env_file=None)


def test_the_intent_tools_read_schedule_names_without_users(tmp_path: Path) -> None:
    path = tmp_path / "catalog.yaml"
    path.write_text("schedules: {Payments: {members: [alice], shift: 1w, handoff: '2026-01-05 09:00'}}\n", "utf-8")
    assert catalog_settings(path).catalog().schedules == ("payments",)
