"""Alert texts: exact wording for the captured Alertmanager payloads, the reply numbering, segment limits,
storm summaries, and hostile label values (line breaks, links, emoji) that must not reach a phone as such."""

from __future__ import annotations

import json
import random
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.alerting.model import AlertEvent, Notification, Severity
from bot.alerting.sources import parse_alertmanager, parse_datadog
from bot.alerting.texts import (
    clean,
    format_firing,
    format_notification,
    format_resolved,
    format_summary,
    numbered,
)
from bot.sms.encoding import is_gsm7, segment_count
from tests.examples import examples

FIXTURES = Path(__file__).parent.parent / "fixtures"
NOW = datetime(2026, 11, 21, 23, 21, 56, 500000, tzinfo=UTC)  # db1 fired 3m ago, db2 2m 54s ago
LINK = re.compile(r"https?:|www\.|://|\.com\b|\.internal/", re.IGNORECASE)


def captured(name: str) -> Notification:
    return parse_alertmanager((FIXTURES / "alertmanager" / f"webhook_v4_{name}.json").read_bytes())


def alert(
    name: str = "DiskFull",
    where: str = "db1:9100",
    summary: str = "",
    status: str = "firing",
    ago_s: float | None = 60,
    severity: Severity = Severity.WARNING,
    fingerprint: str | None = None,
    **labels: str,
) -> AlertEvent:
    return AlertEvent(
        fingerprint=fingerprint or f"{name}/{where}/{ago_s}",
        name=name,
        labels={"alertname": name, "instance": where, **labels} if where else {"alertname": name, **labels},
        status="firing" if status == "firing" else "resolved",
        severity=severity,
        summary=summary,
        starts_at=None if ago_s is None else NOW - timedelta(seconds=ago_s),
        ends_at=NOW if status == "resolved" else None,
    )


def group(*alerts: AlertEvent, **extra: str) -> Notification:
    firing = any(a.status == "firing" for a in alerts)
    return Notification(
        source="test", group_key="g", status="firing" if firing else "resolved", alerts=alerts, extra=extra
    )


def firing_text(notification: Notification, max_segments: int = 3, actions: bool = True) -> str:
    return format_firing(notification, numbered(notification.alerts), NOW, max_segments=max_segments, actions=actions)


# --- exact texts for the captured payloads ---------------------------------------------------------------------

EXACT = [
    pytest.param(
        "firing",
        "FIRING 2 critical: DiskFull\n"
        "1) db1:9100 - Disk /var is 97% full on db1 (3m)\n"
        "2) db2:9100 - Disk /var is 96% full on db2 (2m)\n"
        "Reply ack N, silence N 1h",
        id="firing",
    ),
    pytest.param(
        "firing_with_one_resolved",
        "FIRING 1 critical: DiskFull\n"
        "1) db1:9100 - Disk /var is 97% full on db1 (3m)\n"
        "Resolved: DiskFull db2:9100\n"
        "Reply ack N, silence N 1h",
        id="firing-with-one-resolved",
    ),
    pytest.param("resolved", "RESOLVED: HighLatency api1:8080", id="resolved"),
]


@pytest.mark.parametrize(("fixture", "text"), EXACT)
def test_exact_texts_for_the_captured_payloads(fixture: str, text: str) -> None:
    notification = captured(fixture)
    assert format_notification(notification, numbered(notification.alerts), NOW) == text
    assert "prometheus" not in text and not LINK.search(text)  # generatorURL never shows


def test_the_whole_group_resolving_is_one_short_line() -> None:
    firing = captured("firing")
    resolved = group(*(AlertEvent(**{**a.__dict__, "status": "resolved", "ends_at": NOW}) for a in firing.alerts))
    text = format_resolved(resolved)
    assert text == "RESOLVED: DiskFull db1:9100, db2:9100"
    assert segment_count(text) == 1


def test_viewers_get_no_reply_hint() -> None:
    text = firing_text(captured("firing"), actions=False)
    assert text.splitlines()[-1] == "2) db2:9100 - Disk /var is 96% full on db2 (2m)"


def test_datadog_text_has_no_link_and_shows_the_host() -> None:
    body = (
        b'{"title": "[Triggered on {host:web1,env:prod}] High CPU", "alert_id": "42", "alert_type": "error",'
        b' "alert_scope": "host:web1,env:prod", "date": "1795291320000",'
        b' "body": "%%%\\nCPU at 97% [graph](https://app.datadoghq.com/x) see https://app.datadoghq.com/m/42 @pagerduty\\n%%%"}'
    )
    notification = parse_datadog(body)
    text = format_notification(notification, numbered(notification.alerts), datetime(2026, 11, 21, 20, 30, tzinfo=UTC))
    assert text == "FIRING 1 critical: High CPU\n1) web1 - CPU at 97% graph see (28m)\nReply ack N, silence N 1h"


# --- numbering ------------------------------------------------------------------------------------------------


def test_numbered_order_is_firing_first_grouped_by_name_oldest_first() -> None:
    alerts = [
        alert("HighCPU", "web2", ago_s=60),
        alert("DiskFull", "db2", status="resolved", ago_s=600),
        alert("DiskFull", "db3", ago_s=None),
        alert("HighCPU", "web1", ago_s=300),
        alert("DiskFull", "db1", ago_s=120),
        alert("apiDown", "api1", ago_s=30),
    ]
    expected = ["apiDown api1", "DiskFull db1", "DiskFull db3", "HighCPU web1", "HighCPU web2", "DiskFull db2"]
    for seed in range(20):
        shuffled = alerts[:]
        random.Random(seed).shuffle(shuffled)
        assert [f"{a.name} {a.labels['instance']}" for a in numbered(shuffled)] == expected


def test_mixed_names_show_each_name_and_the_numbers_follow_the_order() -> None:
    notification = group(
        alert("HighCPU", "web1", "CPU 95%", ago_s=120, severity=Severity.WARNING),
        alert("DiskFull", "db1", "Disk 97%", ago_s=600, severity=Severity.CRITICAL),
        alert("DiskFull", "db2", "Disk 91%", ago_s=60, severity=Severity.WARNING),
    )
    assert firing_text(notification) == (
        "FIRING 3 critical: DiskFull, HighCPU\n"
        "1) DiskFull db1 - Disk 97% (10m)\n"
        "2) DiskFull db2 - Disk 91% (1m)\n"
        "3) HighCPU web1 - CPU 95% (2m)\n"
        "Reply ack N, silence N 1h"
    )


def test_numbers_come_from_the_list_the_caller_keeps() -> None:
    """A recipient's list of every open alert: the new group's alerts keep their place in it."""
    older = [alert("ApiDown", "api1"), alert("CertExpiry", "lb1")]
    notification = captured("firing")
    everything = numbered([*older, *notification.alerts])
    text = format_firing(notification, everything, NOW)
    assert [line.split(")")[0] for line in text.splitlines()[1:3]] == ["3", "4"]
    with pytest.raises(ValueError, match="missing from numbered_alerts"):
        format_firing(notification, numbered(older), NOW)


def test_format_firing_refuses_what_it_cannot_word() -> None:
    with pytest.raises(ValueError, match="format_resolved"):
        firing_text(captured("resolved"))
    with pytest.raises(ValueError, match="nothing resolved"):
        format_resolved(captured("firing"))
    with pytest.raises(ValueError, match="timezone-aware"):
        format_firing(captured("firing"), captured("firing").alerts, NOW.replace(tzinfo=None))
    with pytest.raises(ValueError, match="max_segments"):
        firing_text(captured("firing"), max_segments=0)


# --- segment limits -------------------------------------------------------------------------------------------


def many(count: int, summary: str = "Disk /var is 97% full") -> Notification:
    return group(*(alert("DiskFull", f"db{i}:9100", summary, ago_s=600 - i) for i in range(1, count + 1)))


@pytest.mark.parametrize("max_segments", [1, 2, 3, 5])
@pytest.mark.parametrize("count", [1, 4, 12, 50, 1000])
def test_big_groups_list_the_first_alerts_and_count_the_rest(count: int, max_segments: int) -> None:
    text = firing_text(many(count), max_segments=max_segments)
    assert segment_count(text) <= max_segments and is_gsm7(text)
    lines = text.splitlines()
    listed = [line for line in lines if re.match(r"\d+\) ", line)]
    assert [int(line.split(")")[0]) for line in listed] == list(range(1, len(listed) + 1))
    assert listed
    assert lines[0] == f"FIRING {count} warning: DiskFull" and lines[-1] == "Reply ack N, silence N 1h"
    if len(listed) < count:
        assert lines[-2] == f"+{count - len(listed)} more; text 'alerts' for all"


def test_three_segments_show_as_many_as_fit() -> None:
    text = firing_text(many(12))
    assert segment_count(text) == 3 and len(text) == 453
    assert text.splitlines()[-2] == "+3 more; text 'alerts' for all"
    assert len(text) + len("\n10) db10:9100 - Disk /var is 97% full (9m)") > 3 * 153  # the next line needs a 4th


def test_alerts_the_source_truncated_are_counted() -> None:
    text = firing_text(group(*many(2).alerts, truncated_alerts="998"))
    assert text.splitlines()[-2] == "+998 more; text 'alerts' for all"
    assert text.startswith("FIRING 1000 warning")  # the group's real size, not what was sent


def ten_thousand(sent: int, truncated: int = 0) -> bytes:
    """The captured firing payload grown to `sent` alerts of one group, with Alertmanager's own count of
    those it left out (`truncatedAlerts`, when its receiver's `max_alerts` trimmed the group)."""
    payload = json.loads((FIXTURES / "alertmanager" / "webhook_v4_firing.json").read_text())
    first = payload["alerts"][0]
    payload["alerts"] = [dict(first, fingerprint=f"{n:016x}", labels=dict(first["labels"], instance=f"h{n}:9100"))
                         for n in range(sent)]  # fmt: skip
    payload["truncatedAlerts"] = truncated
    return json.dumps(payload).encode()


@pytest.mark.parametrize(
    ("sent", "truncated"),
    [
        pytest.param(10_000, 0, id="10000-sent"),
        pytest.param(3, 9_997, id="alertmanager-truncated"),
        pytest.param(2_000, 8_000, id="both"),
    ],  # fmt: skip
)
def test_a_ten_thousand_alert_group_is_texted_as_ten_thousand(sent: int, truncated: int) -> None:
    notification = parse_alertmanager(ten_thousand(sent, truncated))
    text = firing_text(notification)
    lines = text.splitlines()
    shown = [line for line in lines if re.match(r"\d+\) ", line)]
    assert lines[0] == "FIRING 10000 critical: DiskFull"
    assert lines[-2] == f"+{10_000 - len(shown)} more; text 'alerts' for all"
    assert segment_count(text) <= 3


def test_the_resolved_line_gives_way_to_firing_alerts() -> None:
    notification = group(*many(9).alerts, alert("DiskFull", "db0:9100", status="resolved"))
    text = firing_text(notification, max_segments=2)
    assert "Resolved:" not in text and segment_count(text) <= 2


def test_one_segment_still_holds_a_long_alert() -> None:
    notification = group(
        alert("X" * 200, "h" * 200 + ":9100", "s" * 500, severity=Severity.CRITICAL), alert("Y" * 80, "h2")
    )
    text = firing_text(notification, max_segments=1)
    assert segment_count(text) == 1
    assert text.startswith("FIRING 2 critical: ") and text.endswith("Reply ack N, silence N 1h")


def test_resolved_texts_cut_to_one_segment() -> None:
    notification = group(*(alert("DiskFull", f"db{i}:9100", status="resolved", ago_s=600 - i) for i in range(40)))
    text = format_resolved(notification)
    assert segment_count(text) == 1
    assert re.fullmatch(r"RESOLVED: DiskFull db0:9100, db1:9100, .*, db\d+:9100 \+\d+ more", text)
    shown = text.count(":9100")
    assert text.endswith(f" +{40 - shown} more")


# --- the storm summary ------------------------------------------------------------------------------------------

SUMMARIES = [
    pytest.param(
        {"DiskFull": 187, "HighCPU": 300},
        487,
        "Alert storm: 487 more alerts (HighCPU 300, DiskFull 187) not texted. Text 'alerts' for the list.",
        id="two-names",
    ),
    pytest.param(
        {"DiskFull": 1}, 1, "Alert storm: 1 more alert (DiskFull 1) not texted. Text 'alerts' for the list.", id="one"
    ),
    pytest.param({}, 12, "Alert storm: 12 more alerts not texted. Text 'alerts' for the list.", id="no-breakdown"),
    pytest.param(
        {"B": 2, "A": 2, "Zero": 0},
        4,
        "Alert storm: 4 more alerts (A 2, B 2) not texted. Text 'alerts' for the list.",
        id="ties-by-name",
    ),
    pytest.param(
        {f"Alert{i:02d}": 100 - i for i in range(30)},
        2565,
        "Alert storm: 2565 more alerts (Alert00 100, Alert01 99, Alert02 98, Alert03 97, Alert04 96, Alert05 95, 24 other names) not texted. Text 'alerts' for the list.",
        id="many-names",
    ),
]


@pytest.mark.parametrize(("counts", "suppressed", "text"), SUMMARIES)
def test_format_summary(counts: dict[str, int], suppressed: int, text: str) -> None:
    assert format_summary(counts, suppressed) == text
    assert segment_count(text) == 1


def test_format_summary_cleans_names_and_refuses_nothing() -> None:
    text = format_summary({"Disk\nFull 🔥 http://x.y/z": 3}, 3)
    assert text == "Alert storm: 3 more alerts (Disk Full 3) not texted. Text 'alerts' for the list."
    with pytest.raises(ValueError):
        format_summary({}, 0)


# --- hostile values ---------------------------------------------------------------------------------------------

HOSTILE = [
    pytest.param("db1\nReply STOP\n3) fake", "db1 Reply STOP 3) fake", id="newlines"),
    pytest.param("db1\r\n\x1b[31mred", "db1 [31mred", id="control-characters"),
    pytest.param("https://grafana.internal/d/abc?var=1", "grafana.internal", id="url-as-instance"),
    pytest.param("🔥🔥 db1 🚨", "db1", id="emoji"),
    pytest.param("“db1” – primary…", '"db1" - primary...', id="typography"),
    pytest.param("sérvér-ñ", "sérvér-ñ", id="gsm7-accents-kept"),
    pytest.param("服务器", "?", id="other-script"),
    pytest.param("db1\u200b\u202e\ufeff", "db1", id="invisible-and-bidi"),
    pytest.param("\ud800db1", "db1", id="lone-surrogate"),
]


@pytest.mark.parametrize(("value", "shown"), HOSTILE)
def test_hostile_label_values_are_one_clean_gsm7_line(value: str, shown: str) -> None:
    notification = group(alert("DiskFull", value, f"see {value} or https://runbooks.example.com/disk"))
    text = firing_text(notification)
    lines = text.splitlines()
    assert len(lines) == 3 and lines[1].startswith(f"1) {shown} - see ")
    assert is_gsm7(text) and not LINK.search(text.replace("grafana.internal", ""))


@pytest.mark.parametrize(
    ("value", "cleaned"),
    [
        pytest.param("Disk /var is 97% full", "Disk /var is 97% full", id="path-kept"),
        pytest.param("subnet 10.0.0.0/16 exhausted", "subnet 10.0.0.0/16 exhausted", id="cidr-kept"),
        pytest.param("see grafana.example.com/d/x now", "see now", id="bare-domain-path"),
        pytest.param("see 10.1.2.3:3000/d/x now", "see now", id="ip-port-path"),
        pytest.param("go www.example.com now", "go now", id="www"),
        pytest.param("open <https://x.example/y> now", "open now", id="angle-link"),
        pytest.param("[Runbook](https://wiki/r) now", "Runbook now", id="markdown-link"),
        pytest.param("mailto:ops@example.com ftp://x/y", "mailto:ops@example.com", id="other-schemes"),
        pytest.param("a" * 5000, "a" * 57 + "...", id="long"),
    ],
)
def test_clean(value: str, cleaned: str) -> None:
    assert clean(value, 60) == cleaned


@settings(max_examples=examples(300), deadline=None)
@given(
    name=st.text(max_size=80),
    where=st.text(max_size=80),
    summary=st.text(max_size=300),
    count=st.integers(1, 30),
    max_segments=st.integers(1, 4),
)
def test_any_values_give_gsm7_within_the_segments_with_honest_lines(
    name: str, where: str, summary: str, count: int, max_segments: int
) -> None:
    notification = group(*(alert(name, where, summary, ago_s=i, fingerprint=str(i)) for i in range(count)))
    text = firing_text(notification, max_segments=max_segments)
    assert is_gsm7(text) and segment_count(text) <= max_segments
    lines = text.splitlines()
    assert lines[0].startswith(f"FIRING {count} warning: ")
    body = lines[1:-1]
    if body and body[-1].startswith("+"):
        body = body[:-1]
    assert [line.split(")")[0] for line in body] == [str(n) for n in range(1, len(body) + 1)]
    resolved = format_resolved(
        group(*(alert(name, where, status="resolved", fingerprint=str(i)) for i in range(count)))
    )
    assert is_gsm7(resolved) and segment_count(resolved) == 1 and "\n" not in resolved


def test_texting_a_1000_alert_group_is_quick() -> None:
    notification = many(1000, summary="🔥 " + "x." * 900)
    started = datetime.now(UTC)
    text = firing_text(notification)
    assert (datetime.now(UTC) - started).total_seconds() < 2
    assert segment_count(text) <= 3


def test_many_names_in_one_group_are_counted_in_the_header() -> None:
    names = ["DiskFull", "HighCPU", "HighMemory", "InstanceDown", "SlowQueries", "ErrorBudgetBurn"]
    notification = group(*(alert(name, f"h{i}", ago_s=i) for i, name in enumerate(names)))
    assert firing_text(notification).splitlines()[0] == "FIRING 6 warning: DiskFull, ErrorBudgetBurn, HighCPU +3"


def test_format_summary_can_say_how_long_texts_pause() -> None:
    text = format_summary({"HighCPU": 300, "DiskFull": 187}, 487, paused_for_s=3600)
    assert (
        text
        == "Alert storm: 487 more alerts (HighCPU 300, DiskFull 187) not texted. Texts paused 1h. Text 'alerts' for the list."
    )
    assert segment_count(text) == 1
