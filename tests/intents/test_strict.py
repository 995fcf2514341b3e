"""The strict syntax: well-formed commands parse literally; anything else is left to the language rules."""

from __future__ import annotations

from typing import Any

import pytest

from intents import Catalog
from intents.strict import balanced, parse_strict


@pytest.mark.parametrize(
    ("text", "intent", "slots"),
    [
        ("status", "status", {}),
        ("STATUS", "status", {}),
        ("help", "help", {}),
        ("help logs", "help", {"topic": "logs"}),
        ("help mute", "help", {"topic": "silence"}),
        ("health database", "health", {"system": "database"}),
        ("health db", "health", {"system": "database"}),
        ("health system=prometheus", "health", {"system": "prometheus"}),
        ("metrics cpu service=checkout range=1h", "metrics", {"metric": "cpu", "service": "checkout", "range_s": 3600}),
        ("metrics cpu checkout 1h", "metrics", {"metric": "cpu", "service": "checkout", "range_s": 3600}),
        ("METRICS Latency service=AUTH range=4h", "metrics", {"metric": "latency", "service": "auth", "range_s": 14400}),
        ("metrics sum(rate(http_requests_total[5m]))", "metrics", {"metric": "sum(rate(http_requests_total[5m]))"}),
        ('metrics up{job="api"} range=1h', "metrics", {"metric": 'up{job="api"}', "range_s": 3600}),
        ("metrics node_load1", "metrics", {"metric": "node_load1"}),
        ('metrics cpu"} or vector(1)', "metrics", {"metric": "cpu"}),
        ("metrics error_rate)) by (le) or vector(1", "metrics", {"metric": "error_rate"}),
        ("graph latency service=payment range=6h", "graph", {"metric": "latency", "service": "payment", "range_s": 21600}),
        ("logs timeout service=payment level=error range=30m", "logs",
         {"terms": ("timeout",), "service": "payment", "level": "error", "range_s": 1800}),
        ("logs error payment", "logs", {"level": "error", "service": "payment", "terms": ()}),
        ("logs error cart 2h", "logs", {"level": "error", "service": "cart", "range_s": 7200, "terms": ()}),
        ('logs "connection reset" service=auth', "logs", {"terms": ("connection", "reset"), "service": "auth"}),
        ("logs warnings web", "logs", {"level": "warn", "service": "web", "terms": ()}),
        ("db connections", "db", {"metric": "connections"}),
        ("db conns", "db", {"metric": "connections"}),
        ("db", "db", {}),
        ("gateway status", "gateway", {"endpoint": "status"}),
        ("gateway search", "gateway", {"endpoint": "search"}),
        ("gateway /api/v1/Orders", "gateway", {"endpoint": "/api/v1/Orders"}),
        ("alerts", "alerts", {}),
        ("alerts firing", "alerts", {"state": "firing"}),
        ("alerts state=silenced", "alerts", {"state": "silenced"}),
        ("silence HighCPU 2h", "silence", {"alert": "HighCPU", "duration_s": 7200}),
        ("silence 2 1h", "silence", {"alert": "2", "duration_s": 3600}),
        ("silence #2 45m", "silence", {"alert": "2", "duration_s": 2700}),
        ("silence alert=DiskFull duration=30m", "silence", {"alert": "DiskFull", "duration_s": 1800}),
        ("ack 2", "ack", {"alert": "2"}),
        ("ack SSLCertExpiring", "ack", {"alert": "SSLCertExpiring"}),
        ("more", "more", {}),
        ("subscribe", "subscribe", {}),
        ("unsubscribe", "unsubscribe", {}),
        ("reset", "reset", {}),
        ("undo", "undo", {}),
        ("confirm 4821", "confirm", {"code": "4821"}),
        # issue 13: a configured alias with key=value parts keeps the parts that read and drops the rest
        ("metrics latency service=$(whoami)", "metrics", {"metric": "latency"}),
        ("metrics cpu service=$(curl evil)", "metrics", {"metric": "cpu"}),
        ("metrics cpu service=mobile-backend", "metrics", {"metric": "cpu"}),
        ("metrics cpu range=forever", "metrics", {"metric": "cpu"}),
        ("metrics cpu colour=red", "metrics", {"metric": "cpu"}),
        ("metrics cpu service=../../etc/passwd", "metrics", {"metric": "cpu"}),
        ("metrics disk range=forever service=web", "metrics", {"metric": "disk", "service": "web"}),
        ("graph latency service=checkout range=$(id)", "graph", {"metric": "latency", "service": "checkout"}),
        ("metrics latency service=`id` range=10m", "metrics", {"metric": "latency", "range_s": 600}),
        ("metrics memory service=<script>alert(1)</script>", "metrics", {"metric": "memory"}),
        ("metrics cpu} or vector(1) {", "metrics", {"metric": "cpu"}),  # "}" before "{" is not balanced
        ("logs service=cart level=warn range=-1h", "logs", {"service": "cart", "level": "warn", "terms": ()}),
        ("logs level=critical service=auth", "logs", {"service": "auth", "terms": ()}),
        ("health kong", "health", {"system": "gateway"}),
        ("health pgbouncer", "health", {"system": "database"}),
        ("health loki", "health", {"system": "logs"}),
        ("health elasticsearch", "health", {"system": "logs"}),
        ("health cloudwatch", "health", {"system": "logs"}),
        ("oncall", "oncall", {}),
        ("oncall payments", "oncall", {"schedule": "payments"}),
        ("oncall payment", "oncall", {"schedule": "payments"}),  # a schedule's singular names it
        ("ONCALL Infra", "oncall", {"schedule": "infra"}),
        ("oncall schedule=infra", "oncall", {"schedule": "infra"}),
        ("take payments 4h", "take", {"schedule": "payments", "duration_s": 14400}),
        ("take infra", "take", {"schedule": "infra"}),
        ("take 2h infra", "take", {"schedule": "infra", "duration_s": 7200}),
        ("take schedule=payments duration=4h", "take", {"schedule": "payments", "duration_s": 14400}),
        ("take rotation=infra for=90m", "take", {"schedule": "infra", "duration_s": 5400}),
        ("escalate 2", "escalate", {"alert": "2"}),
        ("escalate #3", "escalate", {"alert": "3"}),
        ("escalate HighCPU", "escalate", {"alert": "HighCPU"}),
        ("escalate highcpu", "escalate", {"alert": "HighCPU"}),  # a known name takes its configured casing
        ("escalate MyCustomAlert", "escalate", {"alert": "MyCustomAlert"}),  # others keep the user's
        ("ack toomanyconnections", "ack", {"alert": "TooManyConnections"}),
        ("silence HighCPU until=09:00", "silence", {"alert": "HighCPU", "until": "09:00"}),
        ("silence 1 until=18:30", "silence", {"alert": "1", "until": "18:30"}),
        ("silence 1 until 9am", "silence", {"alert": "1", "until": "09:00"}),
        ("silence DiskFull till 14:30", "silence", {"alert": "DiskFull", "until": "14:30"}),
        ("silence alert=DiskFull until=noon", "silence", {"alert": "DiskFull", "until": "12:00"}),
    ],
)  # fmt: skip
def test_well_formed(catalog: Catalog, text: str, intent: str, slots: dict[str, Any]) -> None:
    parse = parse_strict(text, catalog)
    assert parse is not None
    assert parse.intent.value == intent
    assert dict(parse.slots) == slots
    assert parse.source.value == "strict"
    assert parse.confidence == 1.0


@pytest.mark.parametrize(
    "text",
    [
        "status please",  # filler: let the language rules read it
        "metrics",  # the metric is required
        "metrics for checkout please",
        "logs any payment errors please",
        "logs service=payment service=auth",  # repeated key
        'logs "unbalanced',
        "silence HighCPU",  # duration required
        "silence HighCPU 1h until=09:00",  # a duration or an end time, never both
        "silence HighCPU until=9",  # 09:00 or 21:00? the language rules ask
        "silence HighCPU until=tomorrow",
        "take payments forever",  # a write never drops a part it cannot read
        "take schedule=billing",  # not a configured schedule
        "take payments infra",
        "oncall billing",
        "escalate",
        "escalate it",
        "escalate to the SRE lead",
        "silence HighCPU for 2h",
        "silence 1h",
        "ack",
        "ack it",
        "health nonsense",
        "alerts everything firing",
        "db throughput now",
        "gateway health",
        "help me",
        "confirm yes",
        "whatever",
        "",
    ],
)
def test_not_strict(catalog: Catalog, text: str) -> None:
    assert parse_strict(text, catalog) is None


@pytest.mark.parametrize(
    ("expression", "ok"),
    [("rate(x[5m])", True), ('up{job="a"}', True), ('cpu"} or vector(1)', False), ("sum(rate(x[5m])", False),
     ("a)(", False), ("'{'", True), ('up{job="a\\"b"}', True), ("cpu} or vector(1) {", False),
     ("cpu service=$(curl evil)", True)],
)  # fmt: skip
def test_balanced(expression: str, ok: bool) -> None:
    assert balanced(expression) is ok
