"""The catalog from configuration: schedules, backends' names, alert names' casing."""

from __future__ import annotations

import pytest

from intents import Catalog, Context, Intent, Parse, Parser, remember


def test_schedules_come_from_the_config_keys() -> None:
    catalog = Catalog.from_config({"schedules": {"Payments": {"members": ["alice"]}, "infra": {}}})
    assert catalog.schedules == ("payments", "infra")
    assert catalog.schedule("payment") == "payments"  # its singular names it
    assert catalog.schedule("INFRA") == "infra"
    assert catalog.schedule("billing") is None
    assert Catalog().schedules == ()


@pytest.mark.parametrize(
    ("monitors", "word", "system"),
    [
        ({}, "kong", "gateway"),
        ({"kong": {"url": "http://k"}}, "kong", "gateway"),  # a kong monitor is still the gateway
        ({"kong": {"type": "kong"}}, "kong", "gateway"),
        ({"kong": {"type": "prometheus"}}, "kong", "kong"),  # another type under that name: its own system
        ({"loki": {}}, "loki", "logs"),
        ({}, "elasticsearch", "logs"),
        ({}, "pgbouncer", "database"),
        ({"orders_api": {"url": "http://o"}}, "orders_api", "orders_api"),
    ],
)
def test_backends_name_their_kinds_system(monitors: dict[str, dict[str, str]], word: str, system: str) -> None:
    assert Catalog.from_config({"monitors": monitors}).lookup("system", word) == system


def test_known_alert_names_take_their_configured_casing() -> None:
    catalog = Catalog.from_config({"alert_names": ["LedgerLag"]})
    assert catalog.alert_name("ledgerlag") == "LedgerLag"
    assert catalog.alert_name("highcpu") == "HighCPU"  # a built-in name
    assert catalog.alert_name("myCustomAlert") == "myCustomAlert"


def test_a_parser_without_schedules_invents_none() -> None:
    parser = Parser(Catalog())
    assert parser.parse("oncall payments").intent is not Intent.TAKE
    assert "schedule" not in parser.parse("who's on call for payments").slots


def test_remember_keeps_the_query_and_the_alert_apart() -> None:
    context = remember(Context(), Parse(Intent.METRICS, {"metric": "cpu", "service": "web"}, "metrics cpu"))
    context = remember(context, Parse(Intent.ACK, {"alert": "2"}, "ack 2"))
    assert context.intent is Intent.METRICS and context.slots == {"metric": "cpu", "service": "web", "alert": "2"}
    assert not context.empty
    for passing in (Intent.HELP, Intent.MORE, Intent.ONCALL, Intent.TAKE, Intent.UNDO, Intent.CONFIRM):
        assert remember(context, Parse(passing)).intent is Intent.METRICS
    renumbered = remember(context, Parse(Intent.ALERTS, {}, "alerts"))
    assert "alert" not in renumbered.slots
    assert remember(Context(), Parse(Intent.ESCALATE, {"alert": "3"}, "escalate 3")).slots == {"alert": "3"}
