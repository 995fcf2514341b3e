"""Benchmark of on-call paging: from an alert to the first page, and what the ticker's pass costs with 1,000
and 10,000 open escalations.

First page: the whole bot under uvicorn on loopback (in-memory stores), an Alertmanager webhook POSTed to it,
and a loopback stand-in for Twilio's REST API that notes when each send arrives; the figure is from the POST
to the page's arrival (target <= 1 s; Alertmanager's own dispatch is in `bench.alerts`).

Ticker: N escalations open, in memory and in a real Redis (Debian's, started on a free loopback port), with a
sender that answers at once. An idle pass (nothing due: what the ticker costs every second) and the passes
that run a step of all N once they come due (a storm; each pass runs 500 at most, one text per person per
pass). Prints figures; asserts nothing.

    python -m bench.oncall [--alerts 30] [--sizes 1000 10000] [--no-redis]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import httpx

from bench.alerts import FakeTwilio
from bot.alerting.model import AlertEvent, Severity
from bot.oncall.escalation import begin
from bot.oncall.service import OnCall
from bot.settings import Settings, load_settings
from bot.sms.outbound import Delivery
from bot.state.memory.alerts import AlertBook
from bot.state.memory.context import InMemoryContextStore
from bot.state.memory.delivery import LocalBudget, SendBudget
from bot.state.memory.oncall import InMemoryEscalations, InMemoryOverrides
from bot.state.memory.subscriptions import InMemorySubscriptions
from tests.bot.appserver import serve, settings_for
from tests.bot.servers_redis import redis_server

HOOK = "bench-" + "o" * 26
T0 = 1_780_000_000.0
CONFIG = """\
users:
  "+15551230001": {name: alice, role: operator}
  "+15551230002": {name: bob, role: operator}
schedules:
  payments: {members: [alice, bob], shift: 1w, handoff: "2026-01-05 09:00", timezone: Europe/Berlin}
escalation:
  default:
    - {notify: payments, wait: 5m}
    - {call: payments, wait: 5m}
    - {notify: all}
alert_budget_texts: 1000000000
"""


def payload(n: int) -> dict[str, object]:
    alert = {"status": "firing", "labels": {"alertname": "BenchDown", "instance": f"host{n}", "severity": "critical"},
             "annotations": {"summary": "bench"}, "startsAt": "2026-11-21T23:00:00Z",
             "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "", "fingerprint": f"{n:016x}"}  # fmt: skip
    return {"version": "4", "status": "firing", "receiver": "bot", "groupKey": f"bench-{n}", "truncatedAlerts": 0,
            "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {}, "externalURL": "",
            "alerts": [alert]}  # fmt: skip


async def first_page(alerts: int) -> list[float]:
    """Seconds from each alert's POST to its page arriving at the fake Twilio."""
    twilio = FakeTwilio()
    await twilio.start()
    took: list[float] = []
    with tempfile.TemporaryDirectory(prefix="operator-bench-oncall-") as folder:
        settings = settings_for(Path(folder), CONFIG, TWILIO_API_BASE_URL=twilio.url, OPERATOR_WEBHOOK_TOKEN=HOOK)
        async with serve(settings) as bot, httpx.AsyncClient(trust_env=False) as client:
            for n in range(alerts + 3):  # the first three warm up the path
                before = len(twilio.arrivals)
                started = time.perf_counter()
                response = await client.post(f"{bot.url}/webhooks/alertmanager", json=payload(n),
                                             headers={"Authorization": f"Bearer {HOOK}"})  # fmt: skip
                assert response.status_code == 202
                while len(twilio.arrivals) <= before:
                    await asyncio.sleep(0.0005)
                if n >= 3:
                    took.append(twilio.arrivals[before] - started)
    assert twilio.server is not None
    twilio.server.close()
    return took


class NullSender:
    """Answers every text and call at once (the ticker's own cost, not Twilio's)."""

    def __init__(self) -> None:
        self.count = 0

    async def send(self, to: str, body: str, media_urls: Sequence[str] = ()) -> Delivery:
        self.count += 1
        return Delivery(to[-4:], f"SM{self.count:032d}", "queued", 1)

    async def call(self, to: str, url: str, status_callback: str | None = None) -> Delivery:
        self.count += 1
        return Delivery(to[-4:], f"CA{self.count:032d}", "queued", 1)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def bench_settings(folder: Path) -> Settings:
    path = folder / "operator.yaml"
    path.write_text(f"public_url: https://ops.example.com\n{CONFIG}", "utf-8")
    return load_settings(path, environ={}, env_file=None)


async def ticker_costs(size: int, redis_url: str | None) -> tuple[float, float, int, int]:
    """(idle pass ms, seconds to run one step of all `size`, passes, texts sent)."""
    clock = Clock()
    with tempfile.TemporaryDirectory(prefix="operator-bench-oncall-") as folder:
        settings = bench_settings(Path(folder))
    client = None
    if redis_url is None:
        escalations, overrides = InMemoryEscalations(clock=clock), InMemoryOverrides()
        contexts, budget = InMemoryContextStore(900, 10_000), LocalBudget(SendBudget(10**9, 600, clock=clock))
    else:
        from bot.state.redis.alerts import RedisBudget
        from bot.state.redis.client import redis_client
        from bot.state.redis.conversation import RedisContextStore
        from bot.state.redis.oncall import RedisEscalations, RedisOverrides

        client = redis_client(redis_url)
        await client.flushall()
        escalations, overrides = RedisEscalations(client), RedisOverrides(client)
        contexts, budget = RedisContextStore(client, 900, 10_000), RedisBudget(client, 10**9, 600, clock=clock)
    sender = NullSender()
    oncall = OnCall(settings, escalations=escalations, overrides=overrides, alerts=AlertBook(), contexts=contexts,
                    subscriptions=InMemorySubscriptions(), budget=budget, sender=sender, caller=sender,
                    clock=clock)  # fmt: skip
    try:
        for n in range(size):
            alert = AlertEvent(f"{n:016x}", "BenchDown", {"alertname": "BenchDown", "instance": f"host{n}"}, "firing",
                               Severity.CRITICAL, "bench")  # fmt: skip
            await escalations.start(replace(begin(alert, "default", T0 - 1), due=T0 + 300))
        idle = []
        for _ in range(20):
            started = time.perf_counter()
            assert await oncall.tick() == 0
            idle.append(time.perf_counter() - started)
        clock.now = T0 + 300
        passes = 0
        started = time.perf_counter()
        while await oncall.tick():
            passes += 1
        took = time.perf_counter() - started
        return statistics.median(idle) * 1000, took, passes, sender.count
    finally:
        if client is not None:
            await client.aclose()


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    options.add_argument("--alerts", type=int, default=30, help="alerts timed to their first page")
    options.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000], help="open escalations")
    options.add_argument("--no-redis", action="store_true", help="only the in-memory store")
    args = options.parse_args()

    took = sorted(asyncio.run(first_page(args.alerts)))
    print(f"alert -> first page ({len(took)} alerts, webhook POST to the send arriving at a loopback Twilio): "
          f"p50 {statistics.median(took) * 1000:.1f} ms, max {took[-1] * 1000:.1f} ms (target <= 1000 ms)")  # fmt: skip

    def report(store: str, redis_url: str | None) -> None:
        for size in args.sizes:
            idle_ms, seconds, passes, sent = asyncio.run(ticker_costs(size, redis_url))
            print(f"{store:<7} {size:>6} open: idle pass {idle_ms:7.3f} ms; a step of all {size}: {seconds:6.2f} s in "
                  f"{passes} passes ({seconds / size * 1e6:5.0f} µs per escalation, {sent} texts)")  # fmt: skip

    report("memory", None)
    if not args.no_redis:
        with redis_server() as redis:
            report("redis", redis.url)


if __name__ == "__main__":
    main()
