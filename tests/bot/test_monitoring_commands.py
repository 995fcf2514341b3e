"""The monitoring commands through the whole conversation path, with monitors the test scripts."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import pytest

from bot.core.commands import default_registry
from bot.core.conversation import Conversation
from bot.core.runtime import build_store
from bot.settings import Settings, load_settings
from intents import Parser
from monitors.base import Alert, AlertList, AlertQuery, Kind, LogQuery, MetricQuery, Query, Result
from monitors.errors import BackendUnavailable
from monitors.registry import MonitorRegistry
from monitors.resilience import Guarded
from tests.fakes import Scripted, ScriptedWriter, in_memory_services

pytestmark = pytest.mark.anyio


def conversation(parser: Parser, *monitors: tuple[Scripted, str], deadline_s: float = 8.0) -> Conversation:
    settings: Settings = load_settings(environ={"OPERATOR_STATUS_DEADLINE_S": str(deadline_s)}, env_file=None)
    registry = MonitorRegistry()
    for monitor, backend_type in monitors:
        registry.register(Guarded(monitor), backend_type)
    commands = default_registry()
    return Conversation(parser, build_store(settings), commands, in_memory_services(settings, registry, commands))


async def test_status_answers_by_the_deadline_naming_the_hung_backend(parser: Parser) -> None:
    talk = conversation(
        parser,
        (Scripted("prometheus", display="Prometheus"), "prometheus"),
        (Scripted("loki", display="Loki", delay_s=30, timeout_s=30), "loki"),
        (Scripted("kong", display="Kong", error=BackendUnavailable("Kong", "cannot connect")), "kong"),
        deadline_s=0.5,
    )
    started = time.monotonic()
    reply = await talk.reply("+1", "is prod on fire?", "viewer")
    assert time.monotonic() - started < 0.5 + 0.1
    assert reply.text.splitlines() == [
        "1/3 backends ok: Prometheus",
        "Loki: timed out after 0.5 s",
        "Kong: unreachable (cannot connect)",
    ]


async def test_status_of_eight_backends_fits_two_sms(parser: Parser) -> None:
    names = ["Prometheus", "Alertmanager", "Loki", "Elasticsearch", "Datadog", "pgBouncer", "Kong", "Host"]
    monitors = [(Scripted(n.lower(), display=n), n.lower()) for n in names[:-2]]
    monitors.append((Scripted("kong", display="Kong", error=BackendUnavailable("Kong", "cannot connect")), "kong"))
    monitors.append((Scripted("host", display="Host", delay_s=5, timeout_s=5), "host"))
    talk = conversation(parser, *monitors, deadline_s=0.3)
    reply = await talk.reply("+1", "status", "viewer")
    assert (
        reply.text.splitlines()[0]
        == "6/8 backends ok: Prometheus, Alertmanager, Loki, Elasticsearch, Datadog, pgBouncer"
    )
    assert len(reply.text) <= 306


async def test_status_lists_what_is_firing(parser: Parser) -> None:
    firing = AlertList(AlertQuery("firing"), (Alert("HighCPU", {}, "firing"), Alert("DiskFull", {}, "firing")))
    talk = conversation(parser, (Scripted("alertmanager", display="Alertmanager", kinds=frozenset({Kind.ALERTS}),
                                          answer=firing), "alertmanager"))  # fmt: skip
    reply = await talk.reply("+1", "status", "viewer")
    assert reply.text.splitlines()[-1] == "2 firing: HighCPU, DiskFull"


async def test_a_cached_health_answer_says_how_old_it_is(parser: Parser) -> None:
    prometheus = Scripted("prometheus", display="Prometheus")
    talk = conversation(parser, (prometheus, "prometheus"))
    cache = talk.services.health_cache
    cache._clock = lambda: 1000.0  # type: ignore[method-assign]
    await talk.reply("+1", "health prometheus", "viewer")
    cache._clock = lambda: 1008.0  # type: ignore[method-assign]
    reply = await talk.reply("+1", "health prometheus", "viewer")
    assert reply.text == "Prometheus: ok, fine after 0s (8s ago)"
    assert (await talk.reply("+1", "status", "viewer")).text == "1/1 backends ok: Prometheus (as of 8s ago)"
    assert prometheus.calls == 1


async def test_health_of_one_system_and_of_one_not_configured(parser: Parser) -> None:
    talk = conversation(parser, (Scripted("prometheus", display="Prometheus", system="prometheus"), "prometheus"))
    assert (await talk.reply("+1", "is prometheus up?", "viewer")).text == "Prometheus: ok, fine after 0s"
    assert (await talk.reply("+1", "health kong", "viewer")).text == (
        "No gateway monitor is configured. Add it under monitors: in the config."
    )


async def test_metrics_go_to_the_preferred_backend_with_the_parsed_slots(parser: Parser) -> None:
    host = Scripted("host", display="Host")
    prometheus = Scripted("prometheus", display="Prometheus")
    talk = conversation(parser, (host, "host"), (prometheus, "prometheus"))
    reply = await talk.reply("+1", "chekout latncy last 6h", "viewer")
    assert reply.text == "Prometheus says MetricResult"
    assert prometheus.queries == [MetricQuery("latency", "checkout", 21600)]
    assert host.queries == []
    await talk.reply("+1", 'metrics rate(x{a="b"}[5m])', "viewer")
    assert prometheus.queries[-1] == MetricQuery('rate(x{a="b"}[5m])', None, None, raw=True)


async def test_logs_get_a_default_range(parser: Parser) -> None:
    loki = Scripted("loki", display="Loki", kinds=frozenset({Kind.LOGS}))
    talk = conversation(parser, (loki, "loki"))
    await talk.reply("+1", "any payment timeouts?", "viewer")
    assert loki.queries == [LogQuery(("timeouts",), "payment", None, 3600)]


async def test_a_failing_backend_is_one_line(parser: Parser) -> None:
    broken = Scripted("prometheus", display="Prometheus", error=BackendUnavailable("Prometheus", "cannot connect"))
    talk = conversation(parser, (broken, "prometheus"))
    assert (await talk.reply("+1", "cpu on web", "viewer")).text == "Prometheus: unreachable (cannot connect)"


async def test_nothing_configured_for_a_kind(parser: Parser) -> None:
    talk = conversation(parser)
    assert (await talk.reply("+1", "db conns?", "viewer")).text == (
        "No database monitor is configured. Add pgbouncer (or an http monitor with kind: db) under monitors:."
    )
    assert (await talk.reply("+1", "status", "viewer")).text.startswith("No monitors are configured.")


async def test_listed_alerts_are_numbered_in_the_users_context(parser: Parser) -> None:
    alerts = AlertList(AlertQuery(), (Alert("HighCPU", {}, "firing", fingerprint="f1"), Alert("DiskFull", {}, "firing",
                                                                                                fingerprint="f2")))  # fmt: skip
    talk = conversation(
        parser, (Scripted("alertmanager", kinds=frozenset({Kind.ALERTS}), answer=alerts), "alertmanager")
    )
    await talk.reply("+1", "alarms going off?", "operator")
    context = await talk.store.get("+1")
    assert context.alerts == ("f1", "f2")
    assert (await talk.store.get("+2")).alerts == ()


async def test_status_with_a_hung_alertmanager_waits_one_timeout_and_says_so_once(parser: Parser) -> None:
    hung = Scripted("alertmanager", display="Alertmanager", kinds=frozenset({Kind.ALERTS}), delay_s=30, timeout_s=0.3)
    talk = conversation(parser, (Scripted("prometheus", display="Prometheus"), "prometheus"), (hung, "alertmanager"),
                        deadline_s=5)  # fmt: skip
    started = time.monotonic()
    reply = await talk.reply("+1", "status", "viewer")
    elapsed = time.monotonic() - started
    assert reply.text.splitlines() == ["1/2 backends ok: Prometheus", "Alertmanager: timed out after 0.3 s"]
    assert elapsed < 0.3 + 0.25 + 0.3  # one backend timeout (with the guard's grace), not two in a row
    assert hung.calls == 2  # health and the firing query, side by side


async def test_status_when_only_the_firing_query_outlives_the_deadline(parser: Parser) -> None:
    @dataclass
    class SlowQueries(Scripted):
        async def query(self, request: Query) -> Result:
            await asyncio.sleep(30)
            raise AssertionError("cancelled by the status deadline")

    slow = SlowQueries("alertmanager", display="Alertmanager", kinds=frozenset({Kind.ALERTS}), timeout_s=30)
    talk = conversation(parser, (slow, "alertmanager"), deadline_s=0.4)
    started = time.monotonic()
    reply = await talk.reply("+1", "status", "viewer")
    assert time.monotonic() - started < 0.4 + 0.2
    assert reply.text.splitlines() == ["1/1 backends ok: Alertmanager", "Alertmanager: timed out after 0.4 s"]


async def test_status_when_the_firing_query_fails_on_a_healthy_backend(parser: Parser) -> None:
    @dataclass
    class BrokenQueries(Scripted):
        async def query(self, request: Query) -> Result:
            raise BackendUnavailable("Alertmanager", "connection reset")

    talk = conversation(parser, (BrokenQueries("alertmanager", display="Alertmanager", kinds=frozenset({Kind.ALERTS})),
                                 "alertmanager"))  # fmt: skip
    reply = await talk.reply("+1", "status", "viewer")
    assert reply.text.splitlines() == ["1/1 backends ok: Alertmanager", "Alertmanager: unreachable (connection reset)"]


async def test_silence_for_forty_five_minutes_in_words_proposes_45_minutes(parser: Parser) -> None:
    """Number words compose ("forty five" is 45, not 5): the proposal and the silence both say 45 min."""
    firing = AlertList(AlertQuery("firing"), (Alert("HighCPU", {"service": "checkout"}, "firing", fingerprint="f1"),))
    am = ScriptedWriter("alertmanager", display="Alertmanager", answer=firing)
    talk = conversation(parser, (am, "alertmanager"))
    question = (await talk.reply("+1", "silence HighCPU for forty five minutes", "operator")).text
    assert question.startswith("Silence HighCPU{service=checkout} for 45m? Reply Y ")
    code = question.rsplit(" ", 1)[1]
    assert (await talk.reply("+1", f"Y {code}", "operator")).text.startswith("Silenced HighCPU")
    assert [seconds for _, seconds in am.silences] == [2700]
