"""The bot's threshold rules: the rule file, the state machine, the loop, and a real Prometheus.

The state-machine tests script what each rule's query answers and move an injected clock, so every
transition (pending, firing, resolved, cooldown, flapping) is checked at an exact second. The last
tests run the same engine against a real Prometheus scraping an exporter whose gauge the test sets.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.alerting.model import Notification, Severity
from bot.alerting.rules.check import check_results, check_rules, format_checks, make_evaluator
from bot.alerting.rules.engine import RuleEngine, SeriesStatus, fingerprint, render_summary
from bot.alerting.rules.loop import run_rules
from bot.alerting.rules.model import Rule, RuleFileError, load_rules, parse_duration
from bot.settings import DEFAULT_METRICS, User
from monitors.errors import BackendQueryError, BackendUnavailable
from monitors.http import new_client
from monitors.prometheus import Prometheus, PrometheusConfig
from monitors.resilience import Guarded
from tests.servers import Exporter, PrometheusServer, prometheus, wait_until

pytestmark = [pytest.mark.anyio, pytest.mark.servers]

T0 = 1_700_000_000.0
MINUTE = 60.0
CHECKOUT = {"service": "checkout"}
PAYMENT = {"service": "payment"}


def rule(name: str = "ValueHigh", **fields: object) -> Rule:
    return Rule.model_validate({"name": name, "expr": "some_metric", "op": ">", "threshold": 50, **fields})


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now

    def at(self, minutes: float) -> None:
        self.now = T0 + minutes * MINUTE


Answer = list[tuple[Mapping[str, str], float]] | BaseException


class Script:
    """The `evaluate` function with answers the test sets per rule: series and values, or an error."""

    def __init__(self) -> None:
        self.answers: dict[str, Answer] = {}
        self.calls: list[str] = []
        self.delay_s = 0.0
        self.in_flight = 0
        self.most_in_flight = 0

    def set(self, name: str, *series: tuple[Mapping[str, str], float]) -> None:
        self.answers[name] = list(series)

    def fail(self, name: str, error: BaseException) -> None:
        self.answers[name] = error

    async def __call__(self, rule: Rule) -> list[tuple[Mapping[str, str], float]]:
        self.calls.append(rule.name)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            answer = self.answers.get(rule.name, [])
            if isinstance(answer, BaseException):
                raise answer
            return answer
        finally:
            self.in_flight -= 1


def engine_for(rules: Sequence[Rule], script: Script, clock: Clock, **options: object) -> RuleEngine:
    return RuleEngine(rules, script, clock, **options)  # type: ignore[arg-type]


def state_of(engine: RuleEngine, labels: Mapping[str, str] = CHECKOUT) -> SeriesStatus:
    [status] = [s for s in engine.states() if dict(s.labels) == dict(labels)]
    return status


# --- the rule file ------------------------------------------------------------------------------


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(text, "utf-8")
    return path


GOOD = """
rules:
  - name: CheckoutCpuHigh
    metric: cpu
    service: checkout
    op: ">="
    threshold: 80
    for: 5m
    cooldown: 1h30m
    severity: critical
    recipients: ["+15551230001", alice]
    summary: "checkout CPU at {value}% on {labels.instance}"
    labels: {team: payments}
  - name: "job:errors:rate5m"
    expr: 'sum(rate(http_requests_total{code=~"5.."}[5m]))'
    op: "!="
    threshold: 0.5
"""


def test_a_good_file(tmp_path: Path) -> None:
    users = {"+15551230001": User(name="bob"), "+15551230002": User(name="alice")}
    cpu, errors = load_rules(write(tmp_path, GOOD), users=users)
    assert (cpu.name, cpu.metric, cpu.service, cpu.expr) == ("CheckoutCpuHigh", "cpu", "checkout", None)
    assert (cpu.op, cpu.threshold, cpu.for_s, cpu.cooldown_s) == (">=", 80.0, 300, 5400)
    assert cpu.severity is Severity.CRITICAL
    assert cpu.recipients == ("+15551230001", "alice")
    assert cpu.labels == {"team": "payments"}
    assert cpu.condition() == "cpu(checkout) >= 80 for 5m"
    # the defaults
    assert (errors.for_s, errors.cooldown_s, errors.severity, errors.recipients) == (0, 600, Severity.WARNING, ())
    assert errors.condition() == 'sum(rate(http_requests_total{code=~"5.."}[5m])) != 0.5'


def test_aliases_come_from_the_given_templates(tmp_path: Path) -> None:
    path = write(tmp_path, 'rules:\n  - {name: Deep, metric: queue_depth, op: ">", threshold: 100}\n')
    with pytest.raises(RuleFileError, match="unknown alias 'queue_depth'"):
        load_rules(path)  # the built-in aliases only
    [deep] = load_rules(path, templates={**DEFAULT_METRICS, "queue_depth": "sum(queue_depth)"})
    assert deep.query().metric == "queue_depth" and not deep.query().raw


def test_an_empty_rule_list_is_allowed(tmp_path: Path) -> None:
    assert load_rules(write(tmp_path, "rules: []\n")) == []


RULE = '  - name: {name}\n    {query}\n    op: "{op}"\n    threshold: 50\n'


def one(extra: str = "", *, name: str = "Bad", query: str = "expr: up", op: str = ">") -> str:
    return (
        "rules:\n"
        + RULE.format(name=name, query=query, op=op)
        + "".join(f"    {line}\n" for line in extra.splitlines())
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(one(op="=>"), "rule 'Bad': op: must be one of > >= < <= == !=", id="bad-op"),
        pytest.param(
            "rules:\n  - name: Bad\n    expr: up\n    op: >\n    threshold: 5\n",
            "rule 'Bad': op: is empty: in YAML a bare > starts a block of text, so quote it",
            id="bare-greater-than",
        ),
        pytest.param(
            "rules:\n  - name: Bad\n    expr: up\n    op: >=\n    threshold: 5\n",
            "not valid YAML at line 4: expected chomping or indentation indicators, but found '=' (quote comparison operators: op: \">=\")",
            id="unquoted-op",
        ),
        pytest.param(
            one(query="metric: nope"),
            "rule 'Bad': metric: unknown alias 'nope' (known: cpu, disk, error_rate, latency, memory, requests, up)",
            id="unknown-alias",
        ),
        pytest.param(
            "rules:\n  - {name: Bad, expr: up, op: '>'}\n", "rule 'Bad': threshold: is required", id="missing-threshold"
        ),
        pytest.param(
            one("for: 5 minutes"),
            "rule 'Bad': for: not a duration (write it like 30s, 5m or 1h30m, at most a year)",
            id="bad-duration",
        ),
        pytest.param(one("cooldown: -5m"), "rule 'Bad': cooldown: not a duration", id="negative-cooldown"),
        pytest.param(one("for: 400d"), "rule 'Bad': for: not a duration", id="duration-too-long"),
        pytest.param(
            one()
            + RULE.format(name="Other", query="expr: up", op=">")
            + RULE.format(name="Bad", query="expr: up", op="<"),
            "rule 'Bad' is defined twice (#1 and #3); names must be unique",
            id="duplicate-names",
        ),
        pytest.param(
            one("metric: cpu"),
            "rule 'Bad': give exactly one of expr (PromQL) or metric (an alias)",
            id="expr-and-metric",
        ),
        pytest.param(
            one(query="severity: info"),
            "rule 'Bad': give exactly one of expr (PromQL) or metric (an alias)",
            id="neither-expr-nor-metric",
        ),
        pytest.param(
            one("service: checkout"), "rule 'Bad': service goes with metric (an alias)", id="service-with-expr"
        ),
        pytest.param(one(query="expr: '  '"), "rule 'Bad': expr: is empty", id="blank-expr"),
        pytest.param(
            one(name="'High CPU'"), "rule #1: name: use 1 to 128 letters, digits, '_', ':' or '-'", id="bad-name"
        ),
        pytest.param(
            one("threshold: lots"), "rule 'Bad': threshold: Input should be a valid number", id="threshold-not-a-number"
        ),
        pytest.param(
            one("threshold: .nan"), "rule 'Bad': threshold: Input should be a finite number", id="threshold-nan"
        ),
        pytest.param(one("threshold: yes"), "rule 'Bad': threshold: must be a number", id="threshold-boolean"),
        pytest.param(
            one("severity: page-everyone"), "rule 'Bad': severity: must be critical, warning or info", id="bad-severity"
        ),
        pytest.param(
            one("recipients: [+15551230001]"),
            "rule 'Bad': recipients: item 0: quote phone numbers in YAML",
            id="unquoted-number",
        ),
        pytest.param(
            one("recipients: [alice, '+12']"),
            "rule 'Bad': recipients: item 1: not an E.164 phone number (like +15551230001)",
            id="short-number",
        ),
        pytest.param(
            one("recipients: ['bob smith']"), "rule 'Bad': recipients: item 0: not a user name", id="bad-user-name"
        ),
        pytest.param(one("recipients: alice"), "rule 'Bad': recipients: must be a list", id="recipients-not-a-list"),
        pytest.param(
            one("summary: 'at {value.__class__}'"),
            "rule 'Bad': summary: unknown placeholder {value.__class__}: use {value} or {labels.NAME}",
            id="summary-attribute",
        ),
        pytest.param(
            one("labels: {'team name': x}"),
            "rule 'Bad': labels: label name 'team name' is not a Prometheus label name",
            id="bad-label-name",
        ),
        pytest.param(
            one("treshold: 5"),
            "rule 'Bad': treshold: is not a known field (did you mean threshold?)",
            id="misspelt-field",
        ),
        pytest.param("ruels:\n  - name: x\n", "ruels: is not a known field (did you mean rules?)", id="misspelt-rules"),
        pytest.param(
            "groups:\n  - name: x\n",
            "groups: is not a known field (the file holds `rules:`)",
            id="prometheus-style-file",
        ),
        pytest.param("", "rules: is required", id="empty-file"),
        pytest.param("rules: {name: x}\n", "rules: must be a list of rules", id="rules-not-a-list"),
        pytest.param("- a\n- b\n", "must be a mapping with a `rules:` list", id="not-a-mapping"),
        pytest.param(
            "rules:\n  - just a string\n", "rule #1: Input should be a valid dictionary", id="rule-not-a-mapping"
        ),
    ],
)
def test_bad_files_say_what_is_wrong_and_where(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(RuleFileError) as caught:
        load_rules(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    assert expected in message
    assert "Traceback" not in message and "pydantic" not in message


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = (
        "rules:\n  - {name: A, expr: up, op: '=>', threshold: 1}\n  - {name: B, metric: nope, op: '>', threshold: 1}\n"
    )
    with pytest.raises(RuleFileError) as caught:
        load_rules(write(tmp_path, text))
    assert str(caught.value).splitlines() == [
        f"{tmp_path / 'rules.yaml'}: 2 problems:",
        "  - rule 'A': op: must be one of > >= < <= == != (quoted in YAML: op: \">=\")",
        "  - rule 'B': metric: unknown alias 'nope' (known: cpu, disk, error_rate, latency, memory, requests, up)",
    ]


def test_recipients_are_checked_against_the_users_without_showing_numbers(tmp_path: Path) -> None:
    path = write(tmp_path, one("recipients: ['+15551239999', carol, alice]"))
    with pytest.raises(RuleFileError) as caught:
        load_rules(path, users={"+15551230001": User(name="alice")})
    message = str(caught.value)
    assert "rule 'Bad': recipients: +1555***9999 is not in users:" in message
    assert "rule 'Bad': recipients: no user is named 'carol'" in message
    assert "+15551239999" not in message
    assert load_rules(path)[0].recipients == ("+15551239999", "carol", "alice")  # no allowlist given: format only


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RuleFileError, match=r"cannot read rule file .*missing\.yaml: No such file or directory"):
        load_rules(tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        pytest.param("5m", 300, id="minutes"),
        pytest.param("1h30m", 5400, id="compound"),
        pytest.param("30s", 30, id="seconds"),
        pytest.param("0", 0, id="zero"),
        pytest.param("0s", 0, id="zero-seconds"),
        pytest.param(0, 0, id="zero-number"),
        pytest.param(90, 90, id="plain-seconds"),
        pytest.param(" 2H ", 7200, id="spaces-and-case"),
    ],
)
def test_durations(text: object, seconds: int) -> None:
    assert parse_duration(text) == seconds


# --- the state machine --------------------------------------------------------------------------


async def test_pending_then_firing_after_for() -> None:
    clock, script = Clock(), Script()
    high = rule(**{"for": "5m", "severity": "critical", "labels": {"team": "ops", "service": "overridden"}})
    engine = engine_for([high], script, clock)
    script.set("ValueHigh", (CHECKOUT, 80))
    assert await engine.tick() == []
    assert state_of(engine).state == "pending" and state_of(engine).active_since == T0
    clock.at(4.9)
    assert await engine.tick() == []
    clock.at(5)
    [notification] = await engine.tick()
    assert (notification.source, notification.group_key, notification.status) == ("rule", "ValueHigh", "firing")
    [event] = notification.alerts
    assert event.fingerprint == fingerprint("ValueHigh", CHECKOUT)
    assert (event.name, event.status, event.severity, event.source) == (
        "ValueHigh",
        "firing",
        Severity.CRITICAL,
        "rule",
    )
    assert event.labels == {"service": "overridden", "team": "ops"}  # the rule's labels win
    assert event.summary == "80 > 50"
    assert event.starts_at == datetime.fromtimestamp(T0 + 5 * MINUTE, UTC) and event.ends_at is None
    assert notification.extra == {}  # no recipients: every subscribed user
    assert state_of(engine).state == "firing"
    clock.at(6)
    assert await engine.tick() == []  # still firing: nothing new to say


async def test_a_condition_that_ends_before_for_sends_nothing() -> None:
    clock, script = Clock(), Script()
    engine = engine_for([rule(**{"for": "5m"})], script, clock)
    script.set("ValueHigh", (CHECKOUT, 80))
    await engine.tick()
    clock.at(3)
    script.set("ValueHigh", (CHECKOUT, 10))
    assert await engine.tick() == []
    assert state_of(engine).state == "inactive"
    clock.at(6)
    script.set("ValueHigh", (CHECKOUT, 80))
    assert await engine.tick() == []  # pending again, from now
    assert state_of(engine).active_since == T0 + 6 * MINUTE


async def test_resolved_once() -> None:
    clock, script = Clock(), Script()
    engine = engine_for([rule()], script, clock)
    script.set("ValueHigh", (CHECKOUT, 80))
    [firing] = await engine.tick()
    clock.at(2)
    script.set("ValueHigh", (CHECKOUT, 10))
    [resolved] = await engine.tick()
    assert resolved.status == "resolved"
    [event] = resolved.alerts
    assert (event.status, event.fingerprint, event.summary) == ("resolved", firing.alerts[0].fingerprint, "now 10")
    assert event.starts_at == datetime.fromtimestamp(T0, UTC)
    assert event.ends_at == datetime.fromtimestamp(T0 + 2 * MINUTE, UTC)
    assert resolved.delivery_key != firing.delivery_key
    for minute in (3, 4, 30):
        clock.at(minute)
        assert await engine.tick() == []


async def test_cooldown_blocks_firing_again_until_it_has_passed() -> None:
    clock, script = Clock(), Script()
    engine = engine_for([rule(cooldown="10m")], script, clock)
    script.set("ValueHigh", (CHECKOUT, 80))
    await engine.tick()
    clock.at(1)
    script.set("ValueHigh", (CHECKOUT, 10))
    [resolved] = await engine.tick()
    assert state_of(engine).state == "resolved"
    script.set("ValueHigh", (CHECKOUT, 80))
    for minute in (2, 5, 10.9):
        clock.at(minute)
        assert await engine.tick() == [], minute
        assert state_of(engine).state == "pending"
    clock.at(11)  # ten minutes after the resolution
    [firing] = await engine.tick()
    assert firing.status == "firing"


async def test_a_flapping_series_is_held_firing_then_resolves_once() -> None:
    clock, script = Clock(), Script()
    engine = engine_for([rule(cooldown="0s")], script, clock, flap_max=4, flap_window_s=3600)
    sent = []
    # true, false, true, false, true: five notifications (flips) in five minutes, each one sent
    for minute, value in enumerate([80, 10, 80, 10, 80]):
        clock.at(minute)
        script.set("ValueHigh", (CHECKOUT, value))
        [notification] = await engine.tick()
        sent.append(notification.status)
    assert sent == ["firing", "resolved", "firing", "resolved", "firing"]
    # more than four flips within the hour: the next resolution is held back
    clock.at(5)
    script.set("ValueHigh", (CHECKOUT, 10))
    assert await engine.tick() == []
    assert state_of(engine).state == "held" and state_of(engine).flips == 5
    clock.at(6)
    script.set("ValueHigh", (CHECKOUT, 80))
    assert await engine.tick() == []  # holds again: still firing, nothing to say
    assert state_of(engine).state == "firing"
    clock.at(7)
    script.set("ValueHigh", (CHECKOUT, 10))
    assert await engine.tick() == []
    for minute in (20, 40, 66.9):  # false without a break, but not yet for the whole window
        clock.at(minute)
        assert await engine.tick() == []
        assert state_of(engine).state == "held"
    clock.at(67)  # an hour after it last stopped holding
    [resolved] = await engine.tick()
    assert resolved.status == "resolved" and len(resolved.alerts) == 1
    clock.at(68)
    assert await engine.tick() == []


async def test_four_flips_are_not_flapping() -> None:
    clock, script = Clock(), Script()
    engine = engine_for([rule(cooldown="0s")], script, clock, flap_max=4)
    statuses = []
    for minute, value in enumerate([80, 10, 80, 10]):
        clock.at(minute)
        script.set("ValueHigh", (CHECKOUT, value))
        statuses += [n.status for n in await engine.tick()]
    assert statuses == ["firing", "resolved", "firing", "resolved"]


async def test_flips_older_than_the_window_do_not_count() -> None:
    clock, script = Clock(), Script()
    engine = engine_for([rule(cooldown="0s")], script, clock, flap_max=4, flap_window_s=3600)
    statuses = []
    for minute, value in [(0, 80), (1, 10), (2, 80), (3, 10), (4, 80), (70, 10)]:
        clock.at(minute)
        script.set("ValueHigh", (CHECKOUT, value))
        statuses += [n.status for n in await engine.tick()]
    assert statuses == ["firing", "resolved", "firing", "resolved", "firing", "resolved"]


async def test_a_disappearing_series_counts_as_resolved() -> None:
    clock, script = Clock(), Script()
    engine = engine_for([rule(cooldown="10m")], script, clock)
    script.set("ValueHigh", (CHECKOUT, 80), (PAYMENT, 90))
    [firing] = await engine.tick()
    assert len(firing.alerts) == 2
    clock.at(1)
    script.set("ValueHigh", (CHECKOUT, 80))  # payment's series is gone
    [resolved] = await engine.tick()
    [event] = resolved.alerts
    assert (event.status, event.labels, event.summary) == ("resolved", PAYMENT, "no data")
    assert state_of(engine, PAYMENT).state == "resolved" and math.isnan(state_of(engine, PAYMENT).value)
    assert state_of(engine, CHECKOUT).state == "firing"
    clock.at(5)
    script.set("ValueHigh", (CHECKOUT, 80), (PAYMENT, 90))
    assert await engine.tick() == []  # back, but within its cooldown
    clock.at(11)
    [again] = await engine.tick()
    assert [a.labels for a in again.alerts] == [PAYMENT]


async def test_a_vanished_series_is_forgotten_once_nothing_about_it_matters() -> None:
    clock, script = Clock(), Script()
    engine = engine_for([rule(**{"for": "5m", "cooldown": "10m"})], script, clock)
    script.set("ValueHigh", (CHECKOUT, 80))
    await engine.tick()
    clock.at(1)
    script.set("ValueHigh")
    assert await engine.tick() == []
    assert engine.states() == []  # a pending series that vanished leaves nothing behind


async def test_a_failing_query_is_skipped_with_its_states_untouched(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bot.alerting.rules")
    clock, script = Clock(), Script()
    engine = engine_for([rule("A"), rule("B", **{"for": "2m"})], script, clock)
    script.set("A", (CHECKOUT, 80))
    script.set("B", (CHECKOUT, 80))
    [firing] = await engine.tick()
    assert firing.group_key == "A"
    script.fail("A", BackendQueryError("Prometheus", "parse error at http://10.1.2.3:9090/api near +15551230001"))
    script.fail("B", BackendUnavailable("Prometheus", "connection refused"))
    for minute in (1, 2, 3):
        clock.at(minute)
        assert await engine.tick() == []
    assert [s.state for s in engine.states()] == ["firing", "pending"]
    assert engine.states()[1].active_since == T0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "rule A: skipped until its query answers (query rejected: parse error at <host> near +1555***0001)",
        "rule B: skipped until its query answers (unreachable (connection refused))",
    ]
    clock.at(4)
    script.set("A", (CHECKOUT, 10))
    script.set("B", (CHECKOUT, 80))
    notifications = await engine.tick()
    assert [(n.group_key, n.status) for n in notifications] == [("A", "resolved"), ("B", "firing")]
    assert "2 rules' queries answer again: A, B" in caplog.text
    assert all(r.exc_info is None for r in caplog.records)


async def test_rules_failing_for_the_same_reason_share_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bot.alerting.rules")
    clock, script = Clock(), Script()
    rules = [rule(f"R{i}") for i in range(50)]
    for r in rules:
        script.fail(r.name, BackendUnavailable("Prometheus", "connection refused"))
    engine = engine_for(rules, script, clock)
    await engine.tick()
    await engine.tick()
    for r in rules:
        script.set(r.name)
    await engine.tick()
    assert [r.getMessage() for r in caplog.records] == [
        "50 rules skipped until their queries answer (unreachable (connection refused)): R0, R1, R2 and 47 more",
        "50 rules' queries answer again: R0, R1, R2 and 47 more",
    ]


async def test_a_hung_query_is_skipped_after_the_timeout() -> None:
    clock, script = Clock(), Script()

    async def hang(rule: Rule) -> list[tuple[Mapping[str, str], float]]:
        if rule.name == "Hung":
            await asyncio.sleep(30)
        return await script(rule)

    script.set("Fine", (CHECKOUT, 80))
    engine = RuleEngine([rule("Hung"), rule("Fine")], hang, clock, timeout_s=0.05)
    [notification] = await asyncio.wait_for(engine.tick(), 5)
    assert notification.group_key == "Fine"


@pytest.mark.parametrize("concurrency", [pytest.param(16, id="default"), pytest.param(3, id="three")])
async def test_concurrency_is_bounded(concurrency: int) -> None:
    clock, script = Clock(), Script()
    script.delay_s = 0.005
    rules = [rule(f"R{i}") for i in range(100)]
    options = {} if concurrency == 16 else {"concurrency": concurrency}
    await engine_for(rules, script, clock, **options).tick()
    assert sorted(script.calls) == sorted(r.name for r in rules)
    assert script.most_in_flight == concurrency


async def test_one_notification_per_rule_and_tick() -> None:
    clock, script = Clock(), Script()
    engine = engine_for([rule("A", cooldown="0s"), rule("B", recipients=["+15551230001", "bob"])], script, clock)
    script.set("A", ({"pod": "c"}, 80))
    script.set("B", ({"pod": "x"}, 80))
    first = await engine.tick()
    assert [n.extra for n in first] == [{}, {"recipients": "+15551230001,bob"}]
    clock.at(1)
    script.set("A", ({"pod": "a"}, 80), ({"pod": "b"}, 90), ({"pod": "c"}, 10))
    [grouped] = await engine.tick()
    assert grouped.group_key == "A" and grouped.status == "firing"  # firing when any alert fires
    assert [(a.labels["pod"], a.status) for a in grouped.alerts] == [
        ("a", "firing"),
        ("b", "firing"),
        ("c", "resolved"),
    ]
    assert grouped.severity is Severity.WARNING
    keys = [n.delivery_key for n in first] + [grouped.delivery_key]
    assert len(set(keys)) == 3


def test_fingerprints_are_stable() -> None:
    assert fingerprint("A", {"a": "1", "b": "2"}) == fingerprint("A", {"b": "2", "a": "1"})
    assert fingerprint("A", {"a": "1"}) != fingerprint("B", {"a": "1"})
    assert fingerprint("A", {"a": "1"}) != fingerprint("A", {"a": "1", "b": ""})
    assert (
        fingerprint("A", CHECKOUT) == "11472da349b273fa"
    )  # the same in every process and release: persisted keys stay valid


async def test_nan_never_holds() -> None:
    clock, script = Clock(), Script()
    engine = engine_for([rule(op="!=", threshold=0)], script, clock)
    script.set("ValueHigh", (CHECKOUT, math.nan))
    assert await engine.tick() == []


def test_summaries() -> None:
    noisy = rule(summary="{labels.service} at {value}% ({labels.missing})")
    assert render_summary(noisy, CHECKOUT, 91.234) == "checkout at 91.2% ()"
    assert render_summary(rule(), CHECKOUT, 1500.0) == "1.5k > 50"
    assert render_summary(rule(), CHECKOUT, 10.0, "resolved") == "now 10"


async def test_two_ticks_at_once_run_one_after_the_other() -> None:
    clock, script = Clock(), Script()
    script.delay_s = 0.01
    script.set("ValueHigh", (CHECKOUT, 80))
    engine = engine_for([rule()], script, clock)
    first, second = await asyncio.gather(engine.tick(), engine.tick())
    assert len(first + second) == 1  # the second saw the first one's firing
    assert script.most_in_flight == 1


def test_duplicate_rule_names_are_refused_by_the_engine() -> None:
    with pytest.raises(ValueError, match="unique: A"):
        RuleEngine([rule("A"), rule("A")], Script())


# --- the background loop ------------------------------------------------------------------------


async def test_the_loop_survives_a_failing_sink_and_a_failing_tick(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bot.alerting.rules")
    values = iter([KeyError("a bug"), 80.0, 10.0, 80.0, 10.0])

    async def evaluate(rule: Rule) -> list[tuple[Mapping[str, str], float]]:
        value = next(values, 10.0)
        if isinstance(value, BaseException):
            raise value
        return [(CHECKOUT, value)]

    engine = RuleEngine([rule(cooldown="0s")], evaluate, flap_max=100)
    stop = asyncio.Event()
    delivered: list[Notification] = []
    attempts = 0

    async def sink(notification: Notification) -> None:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise RuntimeError("twilio said no to +15551230001 at https://api.twilio.com/x")
        delivered.append(notification)
        if len(delivered) == 3:
            stop.set()

    await asyncio.wait_for(run_rules(engine, 0.01, sink, stop), 10)
    assert [n.status for n in delivered] == ["resolved", "firing", "resolved"]
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors == [
        "rules tick failed: KeyError: 'a bug'",
        "rule ValueHigh: notification not delivered: RuntimeError: twilio said no to +1555***0001 at <host>",
    ]
    assert all(r.exc_info is None for r in caplog.records)


async def test_the_loop_never_runs_two_ticks_at_once_nor_catches_up() -> None:
    script = Script()
    script.delay_s = 0.07  # a tick takes longer than the interval
    starts: list[float] = []
    loop = asyncio.get_running_loop()

    async def evaluate(rule: Rule) -> list[tuple[Mapping[str, str], float]]:
        starts.append(loop.time())
        return await script(rule)

    engine = RuleEngine([rule()], evaluate)
    stop = asyncio.Event()

    async def sink(notification: Notification) -> None:
        pass

    task = asyncio.create_task(run_rules(engine, 0.05, sink, stop))
    await asyncio.sleep(0.45)
    stop.set()
    await asyncio.wait_for(task, 1)
    assert script.most_in_flight == 1
    gaps = [later - earlier for earlier, later in zip(starts, starts[1:], strict=False)]
    assert len(gaps) >= 2
    # the slot at 0.05 s was missed while the first tick ran: the next starts at 0.10 s, not at once
    assert min(gaps) >= 0.095


async def test_the_loop_waits_out_its_interval_and_wakes_on_stop() -> None:
    script = Script()
    engine = RuleEngine([rule()], script)
    stop = asyncio.Event()

    async def sink(notification: Notification) -> None:
        pass

    task = asyncio.create_task(run_rules(engine, 3600, sink, stop))
    await asyncio.sleep(0.05)
    assert script.calls == ["ValueHigh"]  # the first tick at once, the next in an hour
    stop.set()
    await asyncio.wait_for(task, 1)


# --- check --------------------------------------------------------------------------------------


async def test_check_lists_every_rule_with_what_it_evaluates_to() -> None:
    script = Script()
    rules = [
        rule("Cpu", expr=None, metric="cpu", service="checkout", threshold=80, **{"for": "5m"}),
        rule("Pods", threshold=1),
        rule("Quiet"),
        rule("Broken"),
    ]
    script.set("Cpu", ({}, 91.5))
    script.set("Pods", ({"__name__": "some_metric", "pod": "a"}, 2), ({"__name__": "some_metric", "pod": "b"}, 0.5))
    script.fail("Broken", BackendQueryError("Prometheus", 'parse error: unexpected "}"'))
    text = await check_rules(rules, script)
    assert text.splitlines() == [
        "Cpu: cpu(checkout) > 80 for 5m: 1 of 1 series hold: value = 91.5 (holds)",
        'Pods: some_metric > 1: 1 of 2 series hold: some_metric{pod="a"} = 2 (holds); some_metric{pod="b"} = 0.5 (does not hold)',
        "Quiet: some_metric > 50: no data (does not hold)",
        'Broken: query rejected: parse error: unexpected "}"',
        "4 rules: 2 hold now, 1 failed",
    ]
    checks = await check_results(rules, script)
    assert [c.error is not None for c in checks] == [False, False, False, True]
    assert format_checks(checks) == text


# --- against a real Prometheus ------------------------------------------------------------------


@pytest.fixture(scope="module")
def rules_exporter() -> Iterator[Exporter]:
    exporter = Exporter()
    exporter.known.labels("rules").set(0)
    exporter.memory.labels("rules").set(512 * 2**20)
    yield exporter
    exporter.stop()


@pytest.fixture(scope="module")
def rules_prometheus(rules_exporter: Exporter, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    targets = {"rules": f"127.0.0.1:{rules_exporter.port}"}
    with prometheus(tmp_path_factory.mktemp("rules-prometheus"), targets) as server:
        yield server


async def scraped(server: PrometheusServer, value: float) -> None:
    """Wait (off the event loop) until Prometheus has scraped the gauge's new value."""

    def seen() -> bool:
        rows = server.query("operator_test_known_value")
        return bool(rows) and float(rows[0]["value"][1]) == value  # type: ignore[index]

    await asyncio.to_thread(wait_until, seen, 30, f"a scrape of {value:g}")


async def test_a_rule_fires_and_resolves_against_a_real_prometheus(
    rules_exporter: Exporter, rules_prometheus: PrometheusServer
) -> None:
    known = rule("KnownValueHigh", expr="operator_test_known_value", **{"for": "0s", "severity": "critical"})
    async with new_client() as client:
        monitor = Guarded(Prometheus("prometheus", PrometheusConfig(url=rules_prometheus.url), client, DEFAULT_METRICS))
        engine = RuleEngine([known], make_evaluator(monitor))
        rules_exporter.known.labels("rules").set(10)
        await scraped(rules_prometheus, 10)
        assert await engine.tick() == []

        rules_exporter.known.labels("rules").set(80)
        await scraped(rules_prometheus, 80)
        [firing] = await engine.tick()
        [event] = firing.alerts
        assert (firing.status, event.status, event.name, event.severity) == (
            "firing",
            "firing",
            "KnownValueHigh",
            Severity.CRITICAL,
        )
        assert event.labels["__name__"] == "operator_test_known_value" and event.labels["service"] == "rules"
        assert event.summary == "80 > 50"
        assert await engine.tick() == []

        rules_exporter.known.labels("rules").set(10)
        await scraped(rules_prometheus, 10)
        [resolved] = await engine.tick()
        assert (resolved.status, resolved.alerts[0].fingerprint) == ("resolved", event.fingerprint)
        assert resolved.alerts[0].summary == "now 10"
        assert await engine.tick() == []


async def test_check_against_a_real_prometheus(rules_exporter: Exporter, rules_prometheus: PrometheusServer) -> None:
    rules = [
        rule("KnownValueHigh", expr="operator_test_known_value"),
        rule("MemoryHigh", expr=None, metric="memory", service="rules", threshold=100_000_000),
        rule("NoSuchMetric", expr="operator_test_not_exported"),
        rule("Broken", expr="operator_test_known_value >"),
    ]
    rules_exporter.known.labels("rules").set(80)
    await scraped(rules_prometheus, 80)
    async with new_client() as client:
        prom = Prometheus("prometheus", PrometheusConfig(url=rules_prometheus.url), client, DEFAULT_METRICS)
        lines = (await check_rules(rules, make_evaluator(prom))).splitlines()
    port = rules_exporter.port
    assert lines[:3] == [
        f'KnownValueHigh: operator_test_known_value > 50: 1 of 1 series hold: operator_test_known_value{{instance="127.0.0.1:{port}", job="rules", service="rules"}} = 80 (holds)',
        "MemoryHigh: memory(rules) > 100000000: 1 of 1 series hold: value = 536870912 (holds)",
        "NoSuchMetric: operator_test_not_exported > 50: no data (does not hold)",
    ]
    assert lines[3].startswith("Broken: query rejected: ") and "parse error" in lines[3]
    assert lines[4] == "4 rules: 2 hold now, 1 failed"
