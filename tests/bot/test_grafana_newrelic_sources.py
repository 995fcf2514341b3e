"""Grafana's webhook contact point and New Relic workflows' webhook: their documented and tested payloads
(tests/fixtures/grafana, tests/fixtures/newrelic) into `Notification`s, the texts made from them (no
link of theirs ever in one), hostile and malformed bodies, delivery keys, out-of-order deliveries, and
fuzzing of every field."""

from __future__ import annotations

import contextlib
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.alerting.model import Notification, Severity
from bot.alerting.sources import (
    MAX_ALERTS,
    MAX_BODY_BYTES,
    NEWRELIC_PAYLOAD_TEMPLATE,
    BadPayload,
    drop_stale,
    is_stale,
    parse_alertmanager,
    parse_grafana,
    parse_newrelic,
)
from bot.alerting.texts import format_notification, numbered
from tests.examples import examples

FIXTURES = Path(__file__).parent.parent / "fixtures"
GF = FIXTURES / "grafana"
NR = FIXTURES / "newrelic"
NOW = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
LINKS = re.compile(r"://|www\.|grafana\.org|grafana\.example|newrelic\.com|myrunbook|example\.com", re.IGNORECASE)


def gf_body(name: str) -> bytes:
    return (GF / f"webhook_{name}.json").read_bytes()


def gf_payload(name: str = "firing") -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(gf_body(name))
    return payload


def nr_body(name: str = "") -> bytes:
    return (NR / f"workflow_webhook_payload{'_' + name if name else ''}.json").read_bytes()


def nr_payload(name: str = "") -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(nr_body(name))
    return payload


def encode(payload: Any) -> bytes:
    return json.dumps(payload).encode()


def texts(notification: Notification) -> list[str]:
    """The text an operator and a viewer would get, in the bot's own words."""
    order = numbered(notification.alerts)
    return [format_notification(notification, order, NOW, actions=actions) for actions in (True, False)]


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


# --- Grafana: the recorded payloads -----------------------------------------------------------------------------

GF_CASES = [
    pytest.param(
        "firing",
        "firing",
        "{}:{}",
        "My Super Webhook",
        [
            ("c6eadffa33fcdf37", "High memory usage", "firing", "This alert was triggered for zone us-1",
             at("2021-10-12T09:51:03.157076+02:00"), None),
            ("bc97ff14869b13e3", "High CPU usage", "firing", "This alert was triggered for zone eu-1",
             at("2021-10-12T09:56:03.157076+02:00"), None),
        ],
        id="docs-firing",
    ),
    pytest.param(
        "firing_grafana11_values",
        "firing",
        '{}/{debug="true"}:{alertname="Memory (copy)", grafana_folder="device"}',
        "Debug webhook",
        [("e6349a25f5ef0e9e", "Memory (copy)", "firing", "High memory usage", at("2024-03-01T02:09:00+00:00"), None)],
        id="grafana11-values",
    ),
    pytest.param(
        "firing_payload_template_test",
        "firing",
        "alertname",
        "my_receiver",
        [("fac0861a85de433a", "alert1", "firing", "", None, None)],  # Go's zero time: no start known
        id="default-template",
    ),
    pytest.param(
        "resolved",
        "resolved",
        '{}/{test="true"}:{}',
        "Webhook test",
        [("d8a21484c9c25a60", "Test alert", "resolved", "This is a summary field, failure on <no value>",
          at("2022-06-17T00:41:00.782137+00:00"), at("2022-06-17T00:51:24.067337+00:00"))],
        id="resolved",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("fixture", "status", "group_key", "receiver", "alerts"), GF_CASES)
def test_grafana_fixtures(fixture: str, status: str, group_key: str, receiver: str,
                          alerts: list[tuple[Any, ...]]) -> None:  # fmt: skip
    notification = parse_grafana(gf_body(fixture))
    assert (notification.source, notification.status, notification.group_key) == ("grafana", status, group_key)
    got = [(a.fingerprint, a.name, a.status, a.summary, a.starts_at, a.ends_at) for a in notification.alerts]
    assert got == alerts
    assert all(a.source == "grafana" and a.labels["alertname"] == a.name for a in notification.alerts)
    assert all(a.severity is Severity.WARNING for a in notification.alerts)  # no severity label: the default
    assert notification.extra == {"receiver": receiver, "org_id": "1"}
    assert re.fullmatch(r"[0-9a-f]{64}", notification.delivery_key)


def test_grafana_labels_are_kept_as_given_and_a_severity_label_counts() -> None:
    first = parse_grafana(gf_body("firing")).alerts[0]
    assert dict(first.labels) == {"alertname": "High memory usage", "team": "blue", "zone": "us-1"}
    payload = gf_payload()
    payload["alerts"][1]["labels"]["severity"] = "critical"
    assert [a.severity for a in parse_grafana(encode(payload)).alerts] == [Severity.WARNING, Severity.CRITICAL]


@pytest.mark.parametrize("fixture", ["firing", "firing_grafana11_values", "firing_payload_template_test", "resolved"])
def test_grafana_links_never_reach_a_notification_or_a_text(fixture: str) -> None:
    """silenceURL, dashboardURL, panelURL, generatorURL, imageURL, externalURL, the message's links and the
    runbook_url annotation: none of them is in what the notifier gets, nor in any text made of it."""
    raw = gf_payload(fixture)
    assert any(key in raw["alerts"][0] for key in ("silenceURL", "generatorURL"))
    notification = parse_grafana(gf_body(fixture))
    kept = [notification.group_key, *notification.extra.values()]
    for alert in notification.alerts:
        kept += [alert.name, alert.summary, *alert.labels.keys(), *alert.labels.values()]
    assert not [value for value in kept if LINKS.search(value)]
    for text in texts(notification):
        assert not LINKS.search(text), text
        assert text.isascii() and all(line.isprintable() for line in text.split("\n"))


def test_grafana_texts_read_like_alertmanagers() -> None:
    operator, viewer = texts(parse_grafana(gf_body("firing")))
    assert operator.startswith("FIRING 2")
    assert "1) " in operator and "2) " in operator and "High CPU usage" in operator
    assert operator.endswith("Reply ack N, silence N 1h") and "Reply" not in viewer
    (resolution,) = set(texts(parse_grafana(gf_body("resolved"))))
    assert resolution.startswith("RESOLVED") and "Test alert" in resolution


def test_grafana_links_in_labels_and_summaries_are_dropped_from_texts() -> None:
    payload = gf_payload()
    payload["alerts"][0]["labels"]["instance"] = "https://grafana.example.com/d/abc?orgId=1&token=s3cret"
    payload["alerts"][0]["annotations"]["summary"] = "see https://myrunbook.com/runbook/1234 now"
    for text in texts(parse_grafana(encode(payload))):
        assert "://" not in text and "/d/abc" not in text and "s3cret" not in text and "myrunbook" not in text, text
        assert "grafana.example.com - see now" in text  # where it is, as a host: the link is gone


def test_grafana_and_alertmanager_bodies_are_told_apart() -> None:
    payload = gf_payload()
    with pytest.raises(BadPayload, match="unsupported Alertmanager payload version '1'"):
        parse_alertmanager(encode(payload))
    am = json.loads((FIXTURES / "alertmanager" / "webhook_v4_firing.json").read_bytes())
    with pytest.raises(BadPayload, match="unsupported Grafana payload version '4'"):
        parse_grafana(encode(am))
    same_group = parse_alertmanager(encode({**payload, "version": "4"}))
    assert same_group.delivery_key != parse_grafana(encode(payload)).delivery_key  # the source is in the key


def test_grafana_without_an_org_and_with_a_truncated_group() -> None:
    payload = gf_payload()
    del payload["orgId"]
    payload["truncatedAlerts"] = 40
    notification = parse_grafana(encode(payload))
    assert notification.extra == {"receiver": "My Super Webhook", "truncated_alerts": "40"}
    assert notification.truncated == 40


def test_a_5000_alert_grafana_group_keeps_the_first_1000() -> None:
    payload = gf_payload()
    template = payload["alerts"][0]
    payload["alerts"] = [{**template, "fingerprint": f"{i:016x}", "labels": {**template["labels"], "n": str(i)}}
                         for i in range(5000)]  # fmt: skip
    notification = parse_grafana(encode(payload))
    assert len(notification.alerts) == MAX_ALERTS and notification.truncated == 4000


def grafana_mutated(change: Any) -> bytes:
    payload = gf_payload()
    change(payload)
    return encode(payload)


BAD_GRAFANA = [
    pytest.param(grafana_mutated(lambda p: p.update(version="4")), "unsupported Grafana payload version '4'",
                 id="alertmanager-version"),
    pytest.param(grafana_mutated(lambda p: p.update(version=1)), "unsupported Grafana payload version 1",
                 id="version-as-number"),
    pytest.param(grafana_mutated(lambda p: p.pop("version")), "unsupported Grafana payload version missing",
                 id="custom-payload-without-version"),
    pytest.param(grafana_mutated(lambda p: p.update(version="1\r\nFAKE" + "x" * 300)),
                 "unsupported Grafana payload version '1 FAKExxx...'", id="hostile-version"),
    pytest.param(grafana_mutated(lambda p: p.update(orgId="1")), "orgId is not a number", id="org-text"),
    pytest.param(grafana_mutated(lambda p: p.update(orgId=True)), "orgId is not a number", id="org-bool"),
    pytest.param(b"", "body is not JSON", id="empty"),
    pytest.param(gf_body("firing")[:-30], "body is not JSON", id="cut-short"),
    pytest.param(b'{"version": "1", "x": "\xff"}', "body is not JSON", id="not-utf8"),
    pytest.param(b"[]", "body is a JSON list, not an object", id="array"),
    pytest.param(b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}", "body is nested too deeply", id="nested"),
    pytest.param(b" " * (MAX_BODY_BYTES + 1), f"body too large ({MAX_BODY_BYTES + 1} bytes, limit {MAX_BODY_BYTES})",
                 id="too-big"),
    pytest.param(grafana_mutated(lambda p: p.update(status="alerting")), "status is 'alerting', not firing or resolved",
                 id="state-as-status"),
    pytest.param(grafana_mutated(lambda p: p.pop("groupKey")), "groupKey is missing or not text", id="no-group-key"),
    pytest.param(grafana_mutated(lambda p: p.update(alerts=[])), "alerts is missing, empty or not a list",
                 id="no-alerts"),
    pytest.param(grafana_mutated(lambda p: p.update(truncatedAlerts="0")), "truncatedAlerts is not a count",
                 id="truncated-text"),
    pytest.param(grafana_mutated(lambda p: p["alerts"][0].update(labels=None)), "alerts[0].labels is not an object",
                 id="labels-null"),
    pytest.param(grafana_mutated(lambda p: p["alerts"][1]["labels"].update(zone=["eu"])),
                 "alerts[1].labels has a value that is not text", id="label-list"),
    pytest.param(grafana_mutated(lambda p: p["alerts"][0]["annotations"].update(summary=12)),
                 "alerts[0].annotations has a value that is not text", id="annotation-number"),
    pytest.param(grafana_mutated(lambda p: p["alerts"][0].update(status="pending")),
                 "alerts[0].status is 'pending', not firing or resolved", id="pending"),
    pytest.param(grafana_mutated(lambda p: p["alerts"][0].update(startsAt="10 minutes ago")),
                 "alerts[0].startsAt is not an RFC 3339 time", id="odd-time"),
    pytest.param(grafana_mutated(lambda p: p["alerts"][0].update(fingerprint={"a": 1})),
                 "alerts[0].fingerprint is not text", id="fingerprint-object"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "message"), BAD_GRAFANA)
def test_bad_grafana_payloads_are_refused_with_short_safe_text(body: bytes, message: str) -> None:
    with pytest.raises(BadPayload) as caught:
        parse_grafana(body)
    text = str(caught.value)
    assert text == message
    assert len(text) <= 80 and text.isascii() and text.isprintable()


def test_grafana_fields_it_adds_may_hold_anything() -> None:
    """values, valueString, imageURL, title, message, state: not read, so not checked."""
    payload = gf_payload("firing_grafana11_values")
    payload.update(title=None, message=["x"], state=7, commonLabels="x", externalURL=None)
    payload["alerts"][0].update(values="NaN", valueString={"x": 1}, imageURL=3, silenceURL=None, panelURL=[])
    assert parse_grafana(encode(payload)).alerts[0].name == "Memory (copy)"


GF_KEY_CASES = [
    pytest.param(lambda p: None, True, id="identical"),
    pytest.param(lambda p: p["alerts"].reverse(), True, id="reordered"),
    pytest.param(lambda p: p.update(title="[FIRING:2] other", message="x", receiver="r"), True, id="envelope"),
    pytest.param(lambda p: p["alerts"][0].update(values={"B": 99.0}, valueString="B=99"), True, id="new-values"),
    pytest.param(lambda p: p["alerts"][0].update(silenceURL="https://elsewhere"), True, id="links"),
    pytest.param(lambda p: p["alerts"][1].update(status="resolved", endsAt="2021-10-12T10:30:00Z"), False,
                 id="one-resolves"),
    pytest.param(lambda p: p["alerts"][0].update(startsAt="2021-10-12T11:00:00Z"), False, id="new-episode"),
    pytest.param(lambda p: p["alerts"].pop(), False, id="alert-leaves"),
    pytest.param(lambda p: p.update(groupKey="other"), False, id="other-group"),
]  # fmt: skip


@pytest.mark.parametrize(("change", "same"), GF_KEY_CASES)
def test_grafana_delivery_keys_recognise_repeats_and_only_repeats(change: Any, same: bool) -> None:
    payload = gf_payload()
    change(payload)
    assert (parse_grafana(encode(payload)).delivery_key == parse_grafana(gf_body("firing")).delivery_key) is same


def test_a_grafana_resolution_that_overtook_its_firing_makes_the_late_firing_stale() -> None:
    resolved = parse_grafana(gf_body("resolved"))
    payload = gf_payload("resolved")
    payload["status"] = "firing"
    payload["alerts"][0].update(status="firing", endsAt="0001-01-01T00:00:00Z")
    late = parse_grafana(encode(payload))
    latest = {a.fingerprint: a for a in resolved.alerts}
    assert is_stale(late.alerts[0], resolved.alerts[0])
    assert drop_stale(late, latest).alerts == ()
    payload["alerts"][0]["startsAt"] = "2022-06-17T01:00:00Z"  # a new episode after the resolution
    assert drop_stale(parse_grafana(encode(payload)), latest).status == "firing"


# --- New Relic: the template and the recorded payloads ------------------------------------------------------------


def test_the_documented_template_is_new_relics_default() -> None:
    recorded = (NR / "workflow_webhook_template.txt").read_text()
    assert NEWRELIC_PAYLOAD_TEMPLATE.split() == recorded.split()
    keys = re.findall(r'^\s*"(\w+)":', NEWRELIC_PAYLOAD_TEMPLATE, re.MULTILINE)
    for name in ("", "created", "closed"):
        assert list(nr_payload(name)) == keys  # the recorded payloads are this template rendered
    import bot.alerting.sources.newrelic as newrelic

    assert "NEWRELIC_PAYLOAD_TEMPLATE" in (newrelic.__doc__ or "")
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert NEWRELIC_PAYLOAD_TEMPLATE.strip() in readme


NR_CASES = [
    pytest.param("", "firing", "c5faa7e6-7b54-402d-af79-f99601e0278c", "Zulip Server Low Storage",
                 "zulip_app query result is > 1.0 for 1 minutes on 'Zulip Server Low Storage'", "zulip_app",
                 datetime.fromtimestamp(1713755131.352, UTC), None, "ACTIVATED", id="activated"),
    pytest.param("created", "firing", "208c5e92-f250-40be-b7c2-50508c268c15", "High CPU",
                 "MAIN-APP-UBUNTU query result is > 2.0 for 1 minutes on 'High CPU'", "MAIN-APP-UBUNTU",
                 datetime.fromtimestamp(1713767789.495, UTC), None, "CREATED", id="created"),
    pytest.param("closed", "resolved", "95a9344a-2590-48ce-8d83-07e28b6d22c6", "High CPU",
                 "main_app-UBUNTU query result is > 2.0 for 1 minutes on 'High CPU'", "main_app-UBUNTU",
                 datetime.fromtimestamp(1713766590.228, UTC), datetime.fromtimestamp(1713766657.383, UTC), "CLOSED",
                 id="closed"),
]  # fmt: skip


@pytest.mark.parametrize(("fixture", "status", "issue", "name", "summary", "scope", "starts", "ends", "state"),
                         NR_CASES)  # fmt: skip
def test_new_relic_fixtures(fixture: str, status: str, issue: str, name: str, summary: str, scope: str,
                            starts: datetime, ends: datetime | None, state: str) -> None:  # fmt: skip
    notification = parse_newrelic(nr_body(fixture))
    (alert,) = notification.alerts
    assert (notification.source, notification.status, notification.group_key) == ("newrelic", status,
                                                                                   f"newrelic:{issue}")  # fmt: skip
    assert (alert.fingerprint, alert.name, alert.status, alert.summary) == (issue, name, status, summary)
    assert (alert.severity, alert.source, alert.starts_at, alert.ends_at) == (
        Severity.CRITICAL,
        "newrelic",
        starts,
        ends,
    )
    assert dict(alert.labels) == {"alertname": name, "scope": scope, "policy": "Golden Signals", "severity": "critical"}
    assert notification.extra["state"] == state and set(notification.extra) == {"state", "trigger", "workflow"}


@pytest.mark.parametrize("fixture", ["", "created", "closed"])
def test_the_issue_url_never_reaches_a_notification_or_a_text(fixture: str) -> None:
    assert "radar-api.service.newrelic.com" in nr_payload(fixture)["issueUrl"]
    notification = parse_newrelic(nr_body(fixture))
    assert "newrelic.com" not in repr(notification)
    for text in texts(notification):
        assert not LINKS.search(text), text
        assert text.isascii() and all(line.isprintable() for line in text.split("\n"))


def test_new_relic_texts() -> None:
    operator, _ = texts(parse_newrelic(nr_body()))
    assert operator.startswith("FIRING") and "Zulip Server Low Storage" in operator and "zulip_app" in operator
    (resolution,) = set(texts(parse_newrelic(nr_body("closed"))))
    assert resolution.startswith("RESOLVED") and "High CPU" in resolution


def nr_with(**changes: Any) -> bytes:
    return encode({**nr_payload(), **changes})


@pytest.mark.parametrize(
    ("priority", "severity"),
    [("CRITICAL", Severity.CRITICAL), ("HIGH", Severity.WARNING), ("MEDIUM", Severity.WARNING),
     ("LOW", Severity.INFO), ("low", Severity.INFO), (None, Severity.WARNING), ("P1", Severity.CRITICAL)],
)  # fmt: skip
def test_new_relic_priority_gives_the_severity(priority: str | None, severity: Severity) -> None:
    alert = parse_newrelic(nr_with(priority=priority)).alerts[0]
    assert alert.severity is severity and alert.labels["severity"] == severity.name.lower()


@pytest.mark.parametrize(("state", "status"), [("CREATED", "firing"), ("ACTIVATED", "firing"),
                                               ("activated", "firing"), ("CLOSED", "resolved")])  # fmt: skip
def test_new_relic_states(state: str, status: str) -> None:
    notification = parse_newrelic(nr_with(state=state))
    assert notification.status == notification.alerts[0].status == status


@pytest.mark.parametrize("changes", [{"state": "DEACTIVATED"}, {"trigger": "ACKNOWLEDGED"}], ids=["deactivated", "ack"])
def test_new_relic_updates_that_page_nobody_have_no_alerts(changes: dict[str, str]) -> None:
    quiet = parse_newrelic(nr_with(**changes))
    assert quiet.alerts == () and quiet.group_key == "newrelic:c5faa7e6-7b54-402d-af79-f99601e0278c"
    assert quiet.delivery_key != parse_newrelic(nr_body()).delivery_key  # it never stands for the page


def test_new_relic_names_fall_back_to_the_title() -> None:
    alert = parse_newrelic(nr_with(alertConditionNames=None, impactedEntities=[], alertPolicyNames=None)).alerts[0]
    assert (alert.name, alert.summary) == (nr_payload()["title"], "")
    assert dict(alert.labels) == {"alertname": alert.name, "severity": "critical"}
    bare = parse_newrelic(b'{"id": "i-1", "state": "ACTIVATED"}').alerts[0]
    assert (bare.name, bare.fingerprint, bare.starts_at) == ("New Relic issue", "i-1", None)


def test_new_relic_many_entities_are_capped_and_deduplicated() -> None:
    entities = ["web-1", "web-1", " ", *[f"host-{n}" for n in range(500)]]
    alert = parse_newrelic(nr_with(impactedEntities=entities)).alerts[0]
    assert alert.labels["scope"].split(", ") == ["web-1", *[f"host-{n}" for n in range(9)]]


@pytest.mark.parametrize(
    ("value", "expected"),
    [(1713755131352, datetime.fromtimestamp(1713755131.352, UTC)), ("1713755131352", datetime.fromtimestamp(1713755131.352, UTC)),
     (1713755131, datetime.fromtimestamp(1713755131, UTC)), (1713755131352.0, datetime.fromtimestamp(1713755131.352, UTC)),
     ("soon", None), ("", None), (-5, None), (10**400, None), (1e300, None), (None, None)],
)  # fmt: skip
def test_new_relic_times_out_of_range_are_unknown(value: Any, expected: datetime | None) -> None:
    assert parse_newrelic(nr_with(createdAt=value)).alerts[0].starts_at == expected


NR_KEY_CASES = [
    pytest.param({}, True, id="retry"),
    pytest.param({"state": "CREATED", "trigger": "INCIDENT_ADDED"}, True, id="created-then-activated"),
    pytest.param({"updatedAt": 1713779999999, "trigger": "PRIORITY_CHANGED", "priority": "HIGH"}, True, id="update"),
    pytest.param({"title": "other words", "totalIncidents": 2}, True, id="title"),
    pytest.param({"state": "CLOSED"}, False, id="closed"),
    pytest.param({"id": "another-issue"}, False, id="another-issue"),
    pytest.param({"createdAt": 1713799999999}, False, id="another-start"),
]


@pytest.mark.parametrize(("changes", "same"), NR_KEY_CASES)
def test_new_relic_delivery_keys_page_once_per_issue(changes: dict[str, Any], same: bool) -> None:
    assert (parse_newrelic(nr_with(**changes)).delivery_key == parse_newrelic(nr_body()).delivery_key) is same


def test_new_relic_closed_retries_repeat_their_key_and_a_late_activation_is_stale() -> None:
    closed = parse_newrelic(nr_with(state="CLOSED", trigger="INCIDENT_CLOSED", updatedAt=1713769999000))
    assert closed.delivery_key == parse_newrelic(nr_with(state="CLOSED", trigger="INCIDENT_CLOSED",
                                                         updatedAt=1713769999000)).delivery_key  # fmt: skip
    assert closed.alerts[0].ends_at == datetime.fromtimestamp(1713769999, UTC)
    late = parse_newrelic(nr_body())
    assert is_stale(late.alerts[0], closed.alerts[0])
    assert drop_stale(late, {closed.alerts[0].fingerprint: closed.alerts[0]}).alerts == ()
    assert not is_stale(closed.alerts[0], late.alerts[0])  # the close of an open issue is news


BAD_NEWRELIC = [
    pytest.param(b"", "body is not JSON", id="empty"),
    pytest.param(b"[]", "body is a JSON list, not an object", id="array"),
    pytest.param(b" " * (MAX_BODY_BYTES + 1), f"body too large ({MAX_BODY_BYTES + 1} bytes, limit {MAX_BODY_BYTES})",
                 id="too-big"),
    pytest.param(nr_body()[:-10], "body is not JSON", id="cut-short"),
    pytest.param(nr_with(id=None), "New Relic payload has no issue id", id="no-id"),
    pytest.param(nr_with(id="  "), "New Relic payload has no issue id", id="blank-id"),
    pytest.param(nr_with(id=1234), "id is not text", id="numeric-id"),
    pytest.param(nr_with(id="x" * 129), "id is too long for an issue id", id="long-id"),
    pytest.param(nr_with(state=None), "state is missing, not CREATED, ACTIVATED or CLOSED", id="no-state"),
    pytest.param(nr_with(state="RESOLVED"), "state is 'RESOLVED', not CREATED, ACTIVATED or CLOSED", id="resolved"),
    pytest.param(nr_with(state="ACTIVATED\nFAKE LOG " + "x" * 200),
                 "state is 'ACTIVATED...', not CREATED, ACTIVATED or CLOSED", id="hostile-state"),
    pytest.param(nr_with(state=["ACTIVATED"]), "state is not text", id="state-list"),
    pytest.param(nr_with(title={"0": "x"}), "title is not text", id="title-object"),
    pytest.param(nr_with(priority=1), "priority is not text", id="priority-number"),
    pytest.param(nr_with(impactedEntities="zulip_app"), "impactedEntities is not a list of text", id="entities-text"),
    pytest.param(nr_with(alertConditionNames=[1]), "alertConditionNames is not a list of text", id="conditions-numbers"),
    pytest.param(nr_with(createdAt=[1]), "createdAt is not a time", id="created-list"),
    pytest.param(nr_with(updatedAt=True), "updatedAt is not a time", id="updated-bool"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "message"), BAD_NEWRELIC)
def test_bad_new_relic_payloads(body: bytes, message: str) -> None:
    with pytest.raises(BadPayload) as caught:
        parse_newrelic(body)
    assert str(caught.value) == message
    assert len(str(caught.value)) <= 80 and str(caught.value).isprintable()


def test_hostile_new_relic_values_make_clean_texts() -> None:
    body = nr_with(title="Disk\r\nFULL\x1b[2J see https://one.newrelic.com/x?token=s3cret " + "y" * 3000,
                   alertConditionNames=["\u26a0 Evil\nName " + "n" * 500], impactedEntities=["http://10.0.0.1:80/x"],
                   workflowName="w" * 10_000)  # fmt: skip
    notification = parse_newrelic(body)
    assert len(notification.extra["workflow"]) <= 80
    for text in texts(notification):
        assert text.isascii() and all(line.isprintable() for line in text.split("\n"))
        assert "s3cret" not in text and "://" not in text and len(text) < 480


# --- anything at all ----------------------------------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
GF_FIELDS = ["version", "status", "orgId", "groupKey", "alerts", "truncatedAlerts", "receiver", "title", "message"]
GF_ALERT_FIELDS = ["status", "labels", "annotations", "startsAt", "endsAt", "fingerprint", "values", "silenceURL"]
NR_FIELDS = ["id", "issueUrl", "title", "priority", "impactedEntities", "totalIncidents", "state", "trigger",
             "isCorrelated", "createdAt", "updatedAt", "sources", "alertPolicyNames", "alertConditionNames",
             "workflowName"]  # fmt: skip


@settings(max_examples=examples(400), deadline=None)
@given(field_name=st.sampled_from(GF_FIELDS + [f"alert.{f}" for f in GF_ALERT_FIELDS]), value=JSON)
def test_any_value_in_any_grafana_field_parses_or_is_a_bad_payload(field_name: str, value: Any) -> None:
    payload = gf_payload()
    if field_name.startswith("alert."):
        payload["alerts"][0][field_name[6:]] = value
    else:
        payload[field_name] = value
    try:
        notification = parse_grafana(json.dumps(payload).encode())
    except BadPayload as exc:
        assert len(str(exc)) <= 80 and str(exc).isprintable()
    else:
        assert notification.alerts and all(a.source == "grafana" for a in notification.alerts)


@settings(max_examples=examples(400), deadline=None)
@given(values=st.dictionaries(st.sampled_from(NR_FIELDS), JSON, max_size=8), keep=st.booleans())
def test_any_new_relic_body_parses_or_is_a_bad_payload(values: dict[str, Any], keep: bool) -> None:
    payload = {**nr_payload(), **values} if keep else values
    try:
        notification = parse_newrelic(json.dumps(payload).encode())
    except BadPayload as exc:
        assert len(str(exc)) <= 80 and str(exc).isprintable()
    else:
        assert len(notification.alerts) <= 1 and all(a.name and a.fingerprint for a in notification.alerts)
        for text in texts(notification) if notification.alerts else []:
            assert text.isascii()


@settings(max_examples=examples(200), deadline=None)
@given(body=st.binary(max_size=200))
def test_any_bytes_parse_or_are_a_bad_payload(body: bytes) -> None:
    for parse in (parse_grafana, parse_newrelic):
        with contextlib.suppress(BadPayload):
            parse(body)


def test_a_grafana_episode_resolved_then_fired_again_is_news() -> None:
    resolved = parse_grafana(gf_body("resolved")).alerts[0]
    assert resolved.ends_at is not None
    again = parse_grafana(gf_body("resolved").replace(b'"status": "resolved"', b'"status": "firing"')).alerts[0]
    assert is_stale(again, resolved)  # same start: the old episode
    later = resolved.ends_at + timedelta(minutes=5)
    payload = gf_payload("resolved")
    payload["status"] = "firing"
    payload["alerts"][0].update(status="firing", startsAt=later.isoformat(), endsAt="0001-01-01T00:00:00Z")
    assert not is_stale(parse_grafana(encode(payload)).alerts[0], resolved)
