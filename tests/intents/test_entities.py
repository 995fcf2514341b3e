"""The spaCy entity rules, checked through the parser's analysis (typo correction included)."""

from __future__ import annotations

import pytest

from intents import Catalog, Parser
from intents.entities import EntityRules, looks_like_alert_name, patterns
from intents.tokens import tokenize


def entities(parser: Parser, text: str) -> list[tuple[str, object]]:
    return [(e.label, e.value) for e in parser.analyse(tuple(tokenize(text))).entities]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("checkout latency", [("SERVICE", "checkout"), ("METRIC", "latency")]),
        ("chekout latncy", [("SERVICE", "checkout"), ("METRIC", "latency")]),
        # a schedule's name or its singular shadows the service it overlaps (only oncall and take read it)
        ("payments error rate", [("SERVICE", "payment"), ("SCHEDULE", "payments"), ("METRIC", "error_rate")]),
        ("payment errors", [("SERVICE", "payment"), ("SCHEDULE", "payments"), ("LEVEL", "error")]),
        ("who is on call for infra", [("SCHEDULE", "infra")]),
        ("the checkout hosts", [("SERVICE", "checkout")]),
        ("payment-svc p99", [("SERVICE", "payment"), ("METRIC", "latency")]),
        ("response-time on auth", [("METRIC", "latency"), ("SERVICE", "auth")]),
        ("mobile-backend memory", [("METRIC", "memory")]),
        ("mobile-api cpu", [("METRIC", "cpu")]),
        ("last 6 hours", [("DURATION", 21600)]),
        ("past day", [("DURATION", 86400)]),
        ("half an hour", [("DURATION", 1800)]),
        ("db conns", [("SYSTEM", "database"), ("DBMETRIC", "connections")]),
        ("is loki up", [("SYSTEM", "logs")]),  # a backend named outright is the fixed system of its kind
        ("is the log backend up", [("SYSTEM", "logs")]),
        ("is checkout up", [("SERVICE", "checkout"), ("METRIC", "up")]),
        ("pull up cpu for payment", [("METRIC", "cpu"), ("SERVICE", "payment"), ("SCHEDULE", "payments")]),
        ("ack #2", [("ALERTREF", "2")]),
        ("silence alert 3 for 1h", [("ALERTREF", "3"), ("DURATION", 3600)]),
        ("the second one", [("ALERTREF", "2")]),
        ("silence HighCPU", [("ALERTNAME", "HighCPU")]),
        ("ack kubepodcrashlooping", [("ALERTNAME", "kubepodcrashlooping")]),
        ("alarms going off", [("STATE", "firing")]),
        ("search for timeout in web", [("SERVICE", "web")]),
        ("search auth logs for timeout", [("SERVICE", "auth"), ("SYSTEM", "logs")]),
        ("search latency", [("SERVICE", "search"), ("METRIC", "latency")]),
        ('logs "payment failed"', [("SYSTEM", "logs")]),  # quoted words are search terms, not entities
    ],
)
def test_entities(parser: Parser, text: str, expected: list[tuple[str, object]]) -> None:
    assert entities(parser, text) == expected


@pytest.mark.parametrize("name", ["HighCPU", "DiskFull", "SSLCertExpiring", "KubePodCrashLooping", "PostgresDown"])
def test_alert_names(name: str) -> None:
    assert looks_like_alert_name(name)


@pytest.mark.parametrize("word", ["Silence", "STATUS", "checkout", "1h30m", "Hi"])
def test_not_alert_names(word: str) -> None:
    assert not looks_like_alert_name(word)


def test_patterns_come_from_the_catalog() -> None:
    catalog = Catalog.from_config({"services": ["billing"], "metrics": {"queue_depth": {"words": ["backlog"]}}})
    found = {(p["label"], p.get("id"), p["pattern"]) for p in patterns(catalog) if isinstance(p["pattern"], str)}
    assert ("SERVICE", "billing", "billing") in found
    assert ("METRIC", "queue_depth", "backlog") in found
    assert not any(label == "SERVICE" and value == "payment" for label, value, _ in found)
    custom = Parser(catalog)
    assert entities(custom, "billing backlog") == [("SERVICE", "billing"), ("METRIC", "queue_depth")]


def test_rules_are_built_once_per_catalog_and_shared_by_equal_ones() -> None:
    first = EntityRules.for_catalog(Catalog(services=("ledger", "billing")))
    assert EntityRules.for_catalog(Catalog(services=("ledger", "billing"))) is first
    other = EntityRules.for_catalog(Catalog(services=("ledger",)))
    assert other is not first and other.catalog.services == ("ledger",)
