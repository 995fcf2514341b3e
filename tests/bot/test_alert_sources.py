"""Alert webhooks: Alertmanager's captured payloads (and a real Alertmanager 0.25 posting to us, retrying
and resolving), Datadog's default template and ours rendered with the documented example values, hostile
bodies, delivery keys and out-of-order deliveries."""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.alerting.model import AlertEvent, Notification, Severity
from bot.alerting.sources import (
    DATADOG_PAYLOAD_TEMPLATE,
    MAX_ALERTS,
    MAX_BODY_BYTES,
    BadPayload,
    drop_stale,
    is_stale,
    parse_alertmanager,
    parse_datadog,
)
from tests.examples import examples
from tests.monitors.servers_alertmanager import webhook_receiver
from tests.servers import LOOPBACK, Process, binary, free_port, http_status, wait_until

pytestmark = pytest.mark.servers

FIXTURES = Path(__file__).parent.parent / "fixtures"
AM = FIXTURES / "alertmanager"
DD = FIXTURES / "datadog"
GROUP_DISK = '{}:{alertname="DiskFull"}'


def am_body(name: str) -> bytes:
    return (AM / f"webhook_v4_{name}.json").read_bytes()


def am_payload(name: str = "firing") -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(am_body(name))
    return payload


def encode(payload: Any) -> bytes:
    return json.dumps(payload).encode()


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


# --- Alertmanager: the captured payloads -----------------------------------------------------------------------

DB1_START = at("2026-11-21T23:18:56.221190+00:00")
DB2_START = at("2026-11-21T23:19:02+00:00")

AM_CASES = [
    pytest.param(
        "firing",
        "firing",
        GROUP_DISK,
        [
            (
                "1751650d45bf7d6b",
                "DiskFull",
                "firing",
                Severity.CRITICAL,
                "Disk /var is 97% full on db1",
                DB1_START,
                None,
            ),
            (
                "70bd263dc713630c",
                "DiskFull",
                "firing",
                Severity.CRITICAL,
                "Disk /var is 96% full on db2",
                DB2_START,
                None,
            ),
        ],
        id="firing",
    ),
    pytest.param(
        "firing_with_one_resolved",
        "firing",
        GROUP_DISK,
        [
            (
                "1751650d45bf7d6b",
                "DiskFull",
                "firing",
                Severity.CRITICAL,
                "Disk /var is 97% full on db1",
                DB1_START,
                None,
            ),
            (
                "70bd263dc713630c",
                "DiskFull",
                "resolved",
                Severity.CRITICAL,
                "Disk /var is 96% full on db2",
                DB2_START,
                DB2_START,
            ),
        ],
        id="firing-with-one-resolved",
    ),
    pytest.param(
        "resolved",
        "resolved",
        '{}:{alertname="HighLatency"}',
        [
            (
                "93a260490e5dfc32",
                "HighLatency",
                "resolved",
                Severity.WARNING,
                "p99 latency above 2s",
                DB2_START,
                DB2_START,
            )
        ],
        id="resolved",
    ),
]


@pytest.mark.parametrize(("fixture", "status", "group_key", "alerts"), AM_CASES)
def test_alertmanager_fixtures(fixture: str, status: str, group_key: str, alerts: list[tuple[Any, ...]]) -> None:
    notification = parse_alertmanager(am_body(fixture))
    assert (notification.source, notification.status, notification.group_key) == ("alertmanager", status, group_key)
    got = [
        (a.fingerprint, a.name, a.status, a.severity, a.summary, a.starts_at, a.ends_at) for a in notification.alerts
    ]
    assert got == alerts
    assert all(a.source == "alertmanager" and a.labels["alertname"] == a.name for a in notification.alerts)
    assert notification.extra == {"receiver": "sms-bot"}  # no externalURL, no generatorURL: nothing to leak
    assert re.fullmatch(r"[0-9a-f]{64}", notification.delivery_key)


def test_the_recorded_headers_belong_to_the_firing_body() -> None:
    lines = (AM / "webhook_request_headers.txt").read_text().splitlines()
    headers = dict(line.split(": ", 1) for line in lines[1:] if line)
    assert headers["User-Agent"] == "Alertmanager/0.25.0"
    assert headers["Content-Type"] == "application/json"
    assert int(headers["Content-Length"]) == len(am_body("firing"))
    assert parse_alertmanager(am_body("firing")).status == "firing"


def test_labels_and_annotations_are_kept_as_given() -> None:
    first = parse_alertmanager(am_body("firing")).alerts[0]
    assert dict(first.labels) == {
        "alertname": "DiskFull",
        "instance": "db1:9100",
        "job": "node",
        "severity": "critical",
    }


def test_description_stands_in_for_a_missing_summary_and_severity_defaults_to_warning() -> None:
    payload = am_payload()
    alert = payload["alerts"][0]
    alert["annotations"] = {"description": "Only a description"}
    del alert["labels"]["severity"]
    parsed = parse_alertmanager(encode(payload)).alerts[0]
    assert (parsed.summary, parsed.severity) == ("Only a description", Severity.WARNING)


def test_a_missing_fingerprint_is_a_hash_of_the_labels_in_any_order() -> None:
    payload = am_payload()
    for alert in payload["alerts"]:
        del alert["fingerprint"]
    first = parse_alertmanager(encode(payload)).alerts
    payload["alerts"][0]["labels"] = dict(reversed(list(payload["alerts"][0]["labels"].items())))
    payload["alerts"][1]["fingerprint"] = ""
    second = parse_alertmanager(encode(payload)).alerts
    assert [a.fingerprint for a in first] == [a.fingerprint for a in second]
    assert first[0].fingerprint != first[1].fingerprint
    assert all(re.fullmatch(r"[0-9a-f]{16}", a.fingerprint) for a in first)


def test_the_same_alert_twice_in_one_payload_counts_once() -> None:
    payload = am_payload()
    payload["alerts"].append(payload["alerts"][0])
    assert len(parse_alertmanager(encode(payload)).alerts) == 2


# --- Alertmanager: what is refused ----------------------------------------------------------------------------


def mutated(change: Any) -> bytes:
    payload = am_payload()
    change(payload)
    return encode(payload)


def nested(depth: int) -> bytes:
    return b'{"a":' + b"[" * depth + b"]" * depth + b"}"


BAD_ALERTMANAGER = [
    pytest.param(
        mutated(lambda p: p.update(version="3")), "unsupported Alertmanager payload version '3'", id="version-3"
    ),
    pytest.param(
        mutated(lambda p: p.update(version=4)), "unsupported Alertmanager payload version 4", id="version-as-number"
    ),
    pytest.param(
        mutated(lambda p: p.pop("version")), "unsupported Alertmanager payload version missing", id="no-version"
    ),
    pytest.param(
        mutated(lambda p: p.update(version="4\nFAKE LOG LINE " + "x" * 500)),
        "unsupported Alertmanager payload version '4 FAKE LO...'",
        id="hostile-version",
    ),
    pytest.param(b"", "body is not JSON", id="empty"),
    pytest.param(b"status=firing", "body is not JSON", id="form-encoded"),
    pytest.param(am_body("firing")[:-20], "body is not JSON", id="cut-short"),
    pytest.param(b'{"version": "4", "x": "\xff\xfe"}', "body is not JSON", id="not-utf8"),
    pytest.param(b'{"version": "4", "n": 1' + b"0" * 5000 + b"}", "body is not JSON", id="huge-integer"),
    pytest.param(b"[]", "body is a JSON list, not an object", id="array"),
    pytest.param(b'"firing"', "body is a JSON str, not an object", id="string"),
    pytest.param(b"null", "body is a JSON NoneType, not an object", id="null"),
    pytest.param(nested(100_000), "body is nested too deeply", id="nested-100k"),
    pytest.param(
        b" " * (MAX_BODY_BYTES + 1),
        f"body too large ({MAX_BODY_BYTES + 1} bytes, limit {MAX_BODY_BYTES})",
        id="over-the-limit",
    ),
    pytest.param(
        b'{"version":"4","pad":"' + b"x" * 10_000_000 + b'"}',
        f"body too large (10000024 bytes, limit {MAX_BODY_BYTES})",
        id="10MB",
    ),
    pytest.param(
        mutated(lambda p: p.update(status="pending")), "status is 'pending', not firing or resolved", id="group-status"
    ),
    pytest.param(mutated(lambda p: p.pop("groupKey")), "groupKey is missing or not text", id="no-group-key"),
    pytest.param(mutated(lambda p: p.update(groupKey=["a"])), "groupKey is missing or not text", id="group-key-list"),
    pytest.param(mutated(lambda p: p.update(alerts={})), "alerts is missing, empty or not a list", id="alerts-object"),
    pytest.param(mutated(lambda p: p.update(alerts=[])), "alerts is missing, empty or not a list", id="no-alerts"),
    pytest.param(
        mutated(lambda p: p.update(truncatedAlerts=-1)), "truncatedAlerts is not a count", id="negative-truncated"
    ),
    pytest.param(
        mutated(lambda p: p.update(truncatedAlerts=True)), "truncatedAlerts is not a count", id="bool-truncated"
    ),
    pytest.param(mutated(lambda p: p["alerts"].append("x")), "alerts[2] is not an object", id="alert-string"),
    pytest.param(
        mutated(lambda p: p["alerts"][0].update(labels=None)), "alerts[0].labels is not an object", id="labels-null"
    ),
    pytest.param(
        mutated(lambda p: p["alerts"][0].update(labels=[["alertname", "x"]])),
        "alerts[0].labels is not an object",
        id="labels-list",
    ),
    pytest.param(
        mutated(lambda p: p["alerts"][1]["labels"].update(severity=3)),
        "alerts[1].labels has a value that is not text",
        id="label-number",
    ),
    pytest.param(
        mutated(lambda p: p["alerts"][0]["labels"].update(x={"a": "b"})),
        "alerts[0].labels has a value that is not text",
        id="label-object",
    ),
    pytest.param(
        mutated(lambda p: p["alerts"][0].update(annotations="summary")),
        "alerts[0].annotations is not an object",
        id="annotations-string",
    ),
    pytest.param(
        mutated(lambda p: p["alerts"][0]["annotations"].update(summary=None)),
        "alerts[0].annotations has a value that is not text",
        id="annotation-null",
    ),
    pytest.param(
        mutated(lambda p: p["alerts"][0].update(status="active")),
        "alerts[0].status is 'active', not firing or resolved",
        id="alert-status",
    ),
    pytest.param(
        mutated(lambda p: p["alerts"][0].update(startsAt="yesterday")),
        "alerts[0].startsAt is not an RFC 3339 time",
        id="odd-time",
    ),
    pytest.param(
        mutated(lambda p: p["alerts"][0].update(endsAt=1700000000)), "alerts[0].endsAt is not text", id="epoch-time"
    ),
    pytest.param(
        mutated(lambda p: p["alerts"][0].update(fingerprint=123)),
        "alerts[0].fingerprint is not text",
        id="fingerprint-number",
    ),
]


@pytest.mark.parametrize(("body", "message"), BAD_ALERTMANAGER)
def test_bad_alertmanager_payloads_are_refused_with_short_safe_text(body: bytes, message: str) -> None:
    with pytest.raises(BadPayload) as caught:
        parse_alertmanager(body)
    text = str(caught.value)
    assert text == message
    assert len(text) <= 80 and text.isascii() and text.isprintable()


def test_a_5000_alert_payload_keeps_the_first_1000_and_counts_the_rest() -> None:
    payload = am_payload()
    template = payload["alerts"][0]
    payload["alerts"] = [
        {**template, "labels": {**template["labels"], "instance": f"db{i}:9100"}, "fingerprint": f"{i:016x}"}
        for i in range(5000)
    ]
    payload["truncatedAlerts"] = 7  # Alertmanager's own max_alerts trimmed some already
    body = encode(payload)
    assert len(body) < MAX_BODY_BYTES
    started = time.perf_counter()
    notification = parse_alertmanager(body)
    assert time.perf_counter() - started < 1.0
    assert len(notification.alerts) == MAX_ALERTS == 1000
    assert notification.alerts[-1].labels["instance"] == "db999:9100"
    assert notification.extra["truncated_alerts"] == str(4000 + 7)


def test_bad_payload_is_a_value_error_raised_from_the_json_error() -> None:
    with pytest.raises(ValueError) as caught:
        parse_alertmanager(b"{")
    assert isinstance(caught.value.__cause__, json.JSONDecodeError)


# --- delivery keys --------------------------------------------------------------------------------------------


def key(payload: dict[str, Any]) -> str:
    return parse_alertmanager(encode(payload)).delivery_key


def with_alert(change: Any, index: int = 0) -> dict[str, Any]:
    payload = am_payload()
    change(payload["alerts"][index])
    return payload


DELIVERY_KEY_CASES = [
    pytest.param(lambda p: None, True, id="identical"),
    pytest.param(lambda p: p["alerts"].reverse(), True, id="alerts-reordered"),
    pytest.param(
        lambda p: p.update(receiver="other", truncatedAlerts=0, commonAnnotations={"x": "y"}), True, id="envelope-only"
    ),
    pytest.param(
        lambda p: p["alerts"][0]["annotations"].update(summary="Disk /var is 98% full on db1"), True, id="summary-edit"
    ),
    pytest.param(lambda p: p["alerts"][0].update(generatorURL="http://elsewhere"), True, id="generator-url"),
    pytest.param(
        lambda p: p["alerts"][1].update(status="resolved", endsAt="2026-11-21T23:30:00Z"), False, id="one-resolves"
    ),
    pytest.param(lambda p: p["alerts"][1].update(endsAt="2026-11-21T23:30:00Z"), False, id="end-changes"),
    pytest.param(lambda p: p["alerts"][0].update(startsAt="2026-11-22T01:00:00Z"), False, id="new-episode"),
    pytest.param(lambda p: p["alerts"].pop(), False, id="alert-leaves"),
    pytest.param(
        lambda p: p["alerts"].append({**p["alerts"][0], "fingerprint": "00000000000000aa"}), False, id="alert-joins"
    ),
    pytest.param(lambda p: p.update(groupKey='{}:{alertname="Other"}'), False, id="other-group"),
]


@pytest.mark.parametrize(("change", "same"), DELIVERY_KEY_CASES)
def test_delivery_key_recognises_repeats_and_only_repeats(change: Any, same: bool) -> None:
    payload = am_payload()
    change(payload)
    assert (key(payload) == parse_alertmanager(am_body("firing")).delivery_key) is same


def test_the_captured_deliveries_have_distinct_keys_and_are_stable() -> None:
    keys = {
        name: parse_alertmanager(am_body(name)).delivery_key
        for name in ("firing", "firing_with_one_resolved", "resolved")
    }
    assert len(set(keys.values())) == 3
    assert keys["firing"] == parse_alertmanager(am_body("firing")).delivery_key


# --- out of order ---------------------------------------------------------------------------------------------


def event(status: str, starts: str | None, ends: str | None = None, fingerprint: str = "fp") -> AlertEvent:
    return AlertEvent(
        fingerprint=fingerprint,
        name="DiskFull",
        labels={},
        status="firing" if status == "firing" else "resolved",
        starts_at=at(starts) if starts else None,
        ends_at=at(ends) if ends else None,
    )


T1, T2, T3 = "2026-11-21T23:00:00+00:00", "2026-11-21T23:10:00+00:00", "2026-11-21T23:20:00+00:00"

STALE_CASES = [
    pytest.param(event("firing", T1), None, False, id="first-firing"),
    pytest.param(event("resolved", T1, T2), None, False, id="resolved-before-its-firing-is-handled"),
    pytest.param(event("firing", T1), event("resolved", T1, T2), True, id="late-firing-after-resolved"),
    pytest.param(event("resolved", T1, T2), event("resolved", T1, T2), True, id="resolved-again"),
    pytest.param(event("firing", T1), event("firing", T1), False, id="repeat-while-firing"),
    pytest.param(event("resolved", T1, T2), event("firing", T1), False, id="resolution"),
    pytest.param(event("firing", T3), event("resolved", T1, T2), False, id="new-episode-after-resolution"),
    pytest.param(event("firing", T1), event("firing", T3), True, id="older-episode"),
    pytest.param(event("resolved", T1, T2), event("firing", T3), True, id="older-episode-resolution"),
    pytest.param(event("firing", T3), event("resolved", None, T2), False, id="datadog-retrigger-after-recovery"),
    pytest.param(event("firing", T1), event("resolved", None, T2), True, id="datadog-trigger-overtaken-by-recovery"),
    pytest.param(event("firing", None), event("resolved", None, T2), True, id="unknown-start-after-resolution"),
]


@pytest.mark.parametrize(("incoming", "latest", "stale"), STALE_CASES)
def test_is_stale(incoming: AlertEvent, latest: AlertEvent | None, stale: bool) -> None:
    assert is_stale(incoming, latest) is stale


def test_a_resolution_that_overtook_its_firing_makes_the_late_firing_stale() -> None:
    """The captured group, delivered out of order: db2's resolution first, then the older all-firing one."""
    later = parse_alertmanager(am_body("firing_with_one_resolved"))
    earlier = parse_alertmanager(am_body("firing"))
    latest: dict[str, AlertEvent] = {}
    assert drop_stale(later, latest) == later  # nothing recorded: handled in full
    latest.update((a.fingerprint, a) for a in later.alerts)
    left = drop_stale(earlier, latest)
    assert [(a.labels["instance"], a.status) for a in left.alerts] == [("db1:9100", "firing")]
    assert (left.status, left.delivery_key) == ("firing", earlier.delivery_key)


def test_a_fully_stale_delivery_leaves_nothing_to_text() -> None:
    resolved = parse_alertmanager(am_body("resolved"))
    stale_firing = replace(
        resolved,
        status="firing",
        alerts=tuple(replace(a, status="firing", ends_at=None) for a in resolved.alerts),
    )
    left = drop_stale(stale_firing, {a.fingerprint: a for a in resolved.alerts})
    assert (left.alerts, left.status) == ((), "resolved")


# --- a real Alertmanager posting to us --------------------------------------------------------------------------


@dataclass
class Receiver:
    """A loopback webhook endpoint that records every POST and fails the first `fail_first` of them."""

    fail_first: int = 0
    bodies: list[bytes] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


@contextlib.contextmanager
def receiving(receiver: Receiver) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (the http.server name)
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with receiver.lock:
                receiver.bodies.append(body)
                receiver.headers.append(dict(self.headers.items()))
                failing = len(receiver.bodies) <= receiver.fail_first
            self.send_response(500 if failing else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            return

    server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{LOOPBACK}:{server.server_address[1]}/alertmanager"
    finally:
        server.shutdown()
        server.server_close()


def post_alerts(url: str, alerts: list[dict[str, Any]]) -> None:
    request = urllib.request.Request(url + "/api/v2/alerts", data=encode(alerts), method="POST")
    request.add_header("Content-Type", "application/json")
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=5):
        pass


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_a_real_alertmanager_retry_has_the_same_key_and_a_resolution_a_new_one(tmp_path: Path) -> None:
    receiver = Receiver(fail_first=1)
    with receiving(receiver) as hook:
        config = tmp_path / "alertmanager.yml"
        config.write_text(webhook_receiver(hook))
        port = free_port()
        args = [binary("prometheus-alertmanager", "/usr/bin/alertmanager"), f"--config.file={config}",
                f"--storage.path={tmp_path / 'data'}", f"--web.listen-address={LOOPBACK}:{port}",
                "--cluster.listen-address=", "--log.level=warn"]  # fmt: skip
        process = Process(args, tmp_path / "alertmanager.log", cwd=tmp_path)
        url = f"http://{LOOPBACK}:{port}"
        try:
            process.wait_ready(lambda: http_status(f"{url}/-/ready") == 200, what="alertmanager")
            start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=3)
            labels = {"alertname": "DiskFull", "instance": "db1:9100", "severity": "critical"}
            post_alerts(url, [{"labels": labels, "startsAt": iso(start), "annotations": {"summary": "Disk 97%"},
                               "generatorURL": "http://prometheus.internal:9090/graph"}])  # fmt: skip
            wait_until(lambda: len(receiver.bodies) >= 2, timeout=20, what="the retried webhook")
            post_alerts(url, [{"labels": labels, "startsAt": iso(start), "endsAt": iso(start + timedelta(minutes=2))}])
            wait_until(lambda: any(b'"status":"resolved"' in b for b in receiver.bodies), timeout=20, what="resolved")
        finally:
            process.stop()

    first, retry, *rest = [parse_alertmanager(body) for body in receiver.bodies]
    assert receiver.headers[0]["User-Agent"].startswith("Alertmanager/")
    assert receiver.headers[0]["Content-Type"] == "application/json"
    assert first.delivery_key == retry.delivery_key  # the retry after our 500 is recognised
    assert (first.status, first.group_key, first.alerts[0].starts_at) == ("firing", GROUP_DISK, start)
    assert first.alerts[0].ends_at is None and first.alerts[0].severity is Severity.CRITICAL
    resolved = next(n for n in rest if n.status == "resolved")
    assert resolved.delivery_key != first.delivery_key
    assert resolved.alerts[0].ends_at == start + timedelta(minutes=2)
    assert is_stale(first.alerts[0], resolved.alerts[0])  # a late retry of the firing would now be stale


# --- Datadog ----------------------------------------------------------------------------------------------------


def documented_examples() -> dict[str, str]:
    """Variable -> the documented example value, from webhook_variables.txt: "-" (none) is empty, a list of
    alternatives ("error | warning") gives its first, a note in parentheses is left out."""
    values: dict[str, str] = {}
    for line in (DD / "webhook_variables.txt").read_text().splitlines():
        if line.startswith("$") and "\t" in line:
            name, example = line.split("\t", 1)
            example = re.sub(r"\s*\(.*\)$", "", example).split(" | ")[0]
            values[name] = "" if example == "-" else example
    return values


def render(template: str, values: dict[str, str]) -> bytes:
    """What Datadog does: each $VARIABLE replaced by its value, JSON-escaped, the longest names first."""
    for name in sorted(values, key=len, reverse=True):
        template = template.replace(name, json.dumps(values[name])[1:-1])
    return template.encode()


EXAMPLES = documented_examples()
DEFAULT_TEMPLATE = (DD / "webhook_default_payload_template.json").read_text()
RICH = {
    **EXAMPLES,
    "$ALERT_TRANSITION": "Triggered",
    "$ALERT_TYPE": "error",
    "$ALERT_PRIORITY": "P2",
    "$EVENT_TITLE": "[P2] [Triggered on {host:ip-012345}] Host is Down",
    "$TEXT_ONLY_MSG": "%%%\nHost ip-012345 stopped reporting. See https://app.datadoghq.com/monitors/1234 @webhook-operator\n%%%",
}


def test_the_recommended_template_uses_only_documented_variables_and_is_json() -> None:
    used = set(re.findall(r"\$[A-Z_]+", DATADOG_PAYLOAD_TEMPLATE))
    assert used <= set(EXAMPLES)
    assert {
        "$ALERT_ID",
        "$ALERT_TRANSITION",
        "$ALERT_TYPE",
        "$ALERT_PRIORITY",
        "$ALERT_SCOPE",
        "$ALERT_TITLE",
        "$AGGREG_KEY",
    } <= used
    json.loads(DATADOG_PAYLOAD_TEMPLATE)
    import bot.alerting.sources.datadog as datadog

    assert datadog.__doc__ is not None and DATADOG_PAYLOAD_TEMPLATE.strip() in "\n".join(
        line[4:] for line in datadog.__doc__.splitlines()
    )


def test_datadog_default_template_with_the_documented_examples() -> None:
    notification = parse_datadog(render(DEFAULT_TEMPLATE, EXAMPLES))
    (alert,) = notification.alerts
    assert (notification.source, notification.status) == ("datadog", "firing")
    assert (alert.name, alert.status, alert.severity, alert.source) == (
        "Memory Alert",
        "firing",
        Severity.CRITICAL,
        "datadog",
    )
    assert alert.summary == "Sending to the webhook"  # the @webhook-url handle is routing, not news
    assert alert.starts_at == datetime.fromtimestamp(1406662672, UTC) and alert.ends_at is None
    assert notification.group_key == "datadog:title:Memory Alert"
    assert notification.extra == {"event_type": "query_alert_monitor", "id": "1234567", "transition": "Triggered"}


def test_datadog_recommended_template_with_the_documented_examples() -> None:
    notification = parse_datadog(render(DATADOG_PAYLOAD_TEMPLATE, RICH))
    (alert,) = notification.alerts
    assert (alert.name, alert.status, alert.severity) == ("Host is Down", "firing", Severity.CRITICAL)
    assert dict(alert.labels) == {
        "availability-zone": "us-east-1a",
        "role": "computing-node",
        "alertname": "Host is Down",
        "scope": "availability-zone:us-east-1a, role:computing-node",
        "monitor_id": "1234",
    }
    assert (
        alert.summary == "Host ip-012345 stopped reporting. See https://app.datadoghq.com/monitors/1234"
    )  # texts drop the link
    assert notification.group_key == "9bd4ac313a4d1e8fae2482df7b77628"


def rich(**overrides: str) -> bytes:
    return render(DATADOG_PAYLOAD_TEMPLATE, {**RICH, **overrides})


DATADOG_SEVERITY = [
    pytest.param({"$ALERT_PRIORITY": "P1", "$ALERT_TYPE": "warning"}, Severity.CRITICAL, id="priority-wins"),
    pytest.param({"$ALERT_PRIORITY": "P4", "$ALERT_TYPE": "error"}, Severity.INFO, id="low-priority-wins"),
    pytest.param(
        {"$ALERT_PRIORITY": "", "$ALERT_TYPE": "warning", "$ALERT_TRANSITION": "Warn"}, Severity.WARNING, id="warn"
    ),
    pytest.param(
        {"$ALERT_PRIORITY": "$ALERT_PRIORITY", "$ALERT_TYPE": "error"}, Severity.CRITICAL, id="unfilled-priority"
    ),
    pytest.param({"$ALERT_PRIORITY": "", "$ALERT_TYPE": "info"}, Severity.INFO, id="info"),
    pytest.param(
        {"$ALERT_PRIORITY": "", "$ALERT_TYPE": "success", "$ALERT_TRANSITION": "Recovered"},
        Severity.WARNING,
        id="recovery-without-priority",
    ),
    pytest.param(
        {"$ALERT_PRIORITY": "P1", "$ALERT_TYPE": "success", "$ALERT_TRANSITION": "Recovered"},
        Severity.CRITICAL,
        id="recovery-with-priority",
    ),
]


@pytest.mark.parametrize(("values", "severity"), DATADOG_SEVERITY)
def test_datadog_severity(values: dict[str, str], severity: Severity) -> None:
    assert parse_datadog(rich(**values)).alerts[0].severity is severity


def test_datadog_recovery_resolves_the_same_alert() -> None:
    triggered = parse_datadog(rich())
    recovered = parse_datadog(
        rich(**{"$ALERT_TRANSITION": "Recovered", "$ALERT_TYPE": "success", "$ALERT_TITLE": "[Recovered on {host:ip-012345}] Host is Down",
                "$DATE": "1406662972000", "$ID": "1234999"})
    )  # fmt: skip
    assert recovered.status == recovered.alerts[0].status == "resolved"
    assert recovered.alerts[0].fingerprint == triggered.alerts[0].fingerprint
    assert recovered.alerts[0].ends_at == datetime.fromtimestamp(1406662972, UTC)
    assert recovered.delivery_key != triggered.delivery_key
    assert is_stale(triggered.alerts[0], recovered.alerts[0])  # the trigger arriving late is old news


def test_datadog_fingerprint_is_monitor_and_scope() -> None:
    base = parse_datadog(rich()).alerts[0].fingerprint
    assert parse_datadog(rich(**{"$ID": "999", "$DATE": "1406663000000"})).alerts[0].fingerprint == base
    assert parse_datadog(rich(**{"$ALERT_SCOPE": "host:other"})).alerts[0].fingerprint != base
    assert parse_datadog(rich(**{"$ALERT_ID": "5678"})).alerts[0].fingerprint != base


def test_datadog_default_template_reads_transition_and_scope_from_the_title() -> None:
    def default(title: str) -> AlertEvent:
        return parse_datadog(render(DEFAULT_TEMPLATE, {**EXAMPLES, "$EVENT_TITLE": title})).alerts[0]

    triggered = default("[Triggered on {host:web1,env:prod}] High CPU")
    recovered = default("[Recovered on {host:web1,env:prod}] High CPU")
    warned = default("[Warn on {host:web1,env:prod}] High CPU")
    assert (triggered.status, recovered.status, warned.status) == ("firing", "resolved", "firing")
    assert triggered.fingerprint == recovered.fingerprint == warned.fingerprint
    assert default("[Triggered on {host:web2,env:prod}] High CPU").fingerprint != triggered.fingerprint
    assert (triggered.labels["host"], triggered.labels["env"]) == ("web1", "prod")
    assert (triggered.severity, warned.severity) == (Severity.CRITICAL, Severity.WARNING)
    assert default("[P1] [Warn] Disk").severity is Severity.CRITICAL
    assert default("Just a title").name == "Just a title"
    assert default("[Triggered]").name == "[Triggered]"
    assert default("[Recovered] []").status == "resolved"


def test_datadog_retries_repeat_the_key() -> None:
    assert parse_datadog(rich()).delivery_key == parse_datadog(rich()).delivery_key
    assert parse_datadog(rich()).delivery_key != parse_datadog(rich(**{"$ID": "7654321"})).delivery_key


def test_datadog_accepts_unquoted_numbers() -> None:
    template = DATADOG_PAYLOAD_TEMPLATE.replace('"$DATE"', "$DATE").replace('"$ALERT_ID"', "$ALERT_ID")
    alert = parse_datadog(render(template, RICH)).alerts[0]
    assert alert.starts_at == datetime.fromtimestamp(1406662672, UTC)
    assert alert.labels["monitor_id"] == "1234"


@pytest.mark.parametrize(
    "date",
    [
        pytest.param("", id="empty"),
        pytest.param("soon", id="word"),
        pytest.param("1e300", id="huge"),
        pytest.param("-5", id="negative"),
    ],
)
def test_datadog_unreadable_date_is_unknown_not_an_error(date: str) -> None:
    assert parse_datadog(rich(**{"$DATE": date})).alerts[0].starts_at is None


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"1" + b"0" * 400, id="400-digit-integer"),
        pytest.param(b"1e400", id="overflowing-float"),
        pytest.param(b"NaN", id="nan"),
        pytest.param(b"-Infinity", id="minus-infinity"),
        pytest.param(b"99999999999999999", id="past-year-9999"),
    ],
)
def test_datadog_unquoted_numbers_out_of_range_are_unknown(raw: bytes) -> None:
    assert parse_datadog(b'{"title": "[Triggered] Disk", "date": ' + raw + b"}").alerts[0].starts_at is None


BAD_DATADOG = [
    pytest.param(b"", "body is not JSON", id="empty"),
    pytest.param(b"[1]", "body is a JSON list, not an object", id="array"),
    pytest.param(b'{"body": "x"}', "Datadog payload has no title", id="no-title"),
    pytest.param(b'{"title": "$EVENT_TITLE"}', "Datadog payload has no title", id="unfilled-title"),
    pytest.param(b'{"title": ["x"]}', "title is not text", id="title-list"),
    pytest.param(b'{"title": "x", "alert_scope": {"host": "a"}}', "alert_scope is not text", id="scope-object"),
    pytest.param(b'{"title": "x", "date": true}', "date is not text", id="date-bool"),
    pytest.param(
        b" " * (MAX_BODY_BYTES + 1),
        f"body too large ({MAX_BODY_BYTES + 1} bytes, limit {MAX_BODY_BYTES})",
        id="too-big",
    ),
]


@pytest.mark.parametrize(("body", "message"), BAD_DATADOG)
def test_bad_datadog_payloads(body: bytes, message: str) -> None:
    with pytest.raises(BadPayload, match=f"^{re.escape(message)}$"):
        parse_datadog(body)


def test_notifications_are_the_shared_model() -> None:
    for notification in (parse_alertmanager(am_body("firing")), parse_datadog(rich())):
        assert isinstance(notification, Notification)
        assert notification.severity is Severity.CRITICAL


# --- anything at all ----------------------------------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
AM_FIELDS = ["version", "status", "groupKey", "alerts", "truncatedAlerts", "receiver"]
ALERT_FIELDS = ["status", "labels", "annotations", "startsAt", "endsAt", "fingerprint"]
DD_FIELDS = [
    "title",
    "alert_title",
    "alert_transition",
    "alert_type",
    "alert_priority",
    "alert_scope",
    "date",
    "id",
    "body",
]


@settings(max_examples=examples(400), deadline=None)
@given(field_name=st.sampled_from(AM_FIELDS + [f"alert.{f}" for f in ALERT_FIELDS]), value=JSON)
def test_any_value_in_any_alertmanager_field_parses_or_is_a_bad_payload(field_name: str, value: Any) -> None:
    payload = am_payload()
    if field_name.startswith("alert."):
        payload["alerts"][0][field_name[6:]] = value
    else:
        payload[field_name] = value
    try:
        notification = parse_alertmanager(json.dumps(payload).encode())
    except BadPayload as exc:
        assert len(str(exc)) <= 80 and str(exc).isprintable()
    else:
        assert notification.alerts and all(isinstance(v, str) for a in notification.alerts for v in a.labels.values())


@settings(max_examples=examples(400), deadline=None)
@given(values=st.dictionaries(st.sampled_from(DD_FIELDS), JSON, max_size=6))
def test_any_datadog_body_parses_or_is_a_bad_payload(values: dict[str, Any]) -> None:
    try:
        notification = parse_datadog(json.dumps(values).encode())
    except BadPayload as exc:
        assert len(str(exc)) <= 80 and str(exc).isprintable()
    else:
        assert len(notification.alerts) == 1 and notification.alerts[0].name


@settings(max_examples=examples(200), deadline=None)
@given(body=st.binary(max_size=200))
def test_any_bytes_parse_or_are_a_bad_payload(body: bytes) -> None:
    for parse in (parse_alertmanager, parse_datadog):
        with contextlib.suppress(BadPayload):
            parse(body)
