"""Benchmark of the threshold rules: what one tick over 1,000 rules costs.

First the engine's own cost, with an in-process evaluator that answers at once (state machines,
fingerprints, notifications): steady (nothing changes) and churning (every rule fires or resolves
every tick, the worst case for building notifications). Then the same 1,000 rules against a real
Prometheus on loopback scraping an exporter, started the way the tests start it, through the bot's
own adapter and `make_evaluator`, 16 queries in flight. On loopback that figure is the client's
CPU per query (httpx, JSON), not Prometheus's latency: `--concurrency 1` is as fast or faster there,
while against a remote Prometheus the 16 in flight hide the network's round trips.
Run with `python -m bench.rules_cost`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from bot.alerting.rules.check import make_evaluator
from bot.alerting.rules.engine import RuleEngine
from bot.alerting.rules.model import Evaluate, Rule, SeriesValues
from bot.settings import DEFAULT_METRICS
from monitors.http import new_client
from monitors.prometheus import Prometheus, PrometheusConfig
from monitors.resilience import Guarded
from tests.servers import Exporter, PrometheusServer, prometheus, wait_until

SERIES_PER_RULE = 3


def scripted_rules(count: int) -> list[Rule]:
    return [
        Rule.model_validate({"name": f"Rule{i}", "expr": f"metric_{i}", "op": ">", "threshold": 50, "cooldown": "0s"})
        for i in range(count)
    ]


class Flipper:
    """An evaluator answering from memory: every rule's series at a value that holds or does not."""

    def __init__(self, churn: bool) -> None:
        self.churn = churn
        self.ticks = 0
        labels: list[Mapping[str, str]] = [
            {"service": f"svc{n}", "instance": f"host{n}:9100", "job": "node"} for n in range(SERIES_PER_RULE)
        ]
        self.high = [(series, 80.0) for series in labels]
        self.low = [(series, 10.0) for series in labels]

    async def __call__(self, rule: Rule) -> SeriesValues:
        if self.churn and self.ticks % 2:
            return self.low
        return self.high


async def time_ticks(engine: RuleEngine, ticks: int, before_tick: Flipper | None = None) -> list[float]:
    """Wall time of each tick after one warm-up tick (which creates every series' state)."""
    await engine.tick()
    timings = []
    for _ in range(ticks):
        if before_tick is not None:
            before_tick.ticks += 1
        started = time.perf_counter()
        await engine.tick()
        timings.append(time.perf_counter() - started)
    return timings


async def engine_cost(count: int, ticks: int, churn: bool) -> tuple[list[float], int]:
    rules = scripted_rules(count)
    flipper = Flipper(churn)
    engine = RuleEngine(rules, flipper, flap_max=10**9)
    timings = await time_ticks(engine, ticks, flipper)
    return timings, len(engine.states())


def prometheus_rules(count: int) -> list[Rule]:
    """Half raw PromQL, half a metric alias (the template expanded per query), thresholds spread."""
    rules = []
    for i in range(count):
        query = (
            {"expr": 'operator_test_known_value{service="bench"}'}
            if i % 2
            else {"metric": "memory", "service": "bench"}
        )
        rules.append(Rule.model_validate({"name": f"Rule{i}", **query, "op": ">", "threshold": i}))
    return rules


async def prometheus_cost(server: PrometheusServer, count: int, ticks: int, concurrency: int) -> list[float]:
    async with new_client() as client:
        monitor = Guarded(Prometheus("prometheus", PrometheusConfig(url=server.url), client, DEFAULT_METRICS))
        evaluate: Evaluate = make_evaluator(monitor)
        engine = RuleEngine(prometheus_rules(count), evaluate, concurrency=concurrency)
        return await time_ticks(engine, ticks)


def real_prometheus(count: int, ticks: int, concurrency: int) -> list[float] | str:
    exporter = Exporter()
    try:
        exporter.known.labels("bench").set(500)
        exporter.memory.labels("bench").set(2**29)
        with (
            tempfile.TemporaryDirectory(prefix="rules-bench-") as tmp,
            prometheus(Path(tmp), {"bench": f"127.0.0.1:{exporter.port}"}) as server,
        ):
            wait_until(lambda: bool(server.query('operator_test_known_value{service="bench"}')), 30, "first scrape")
            return asyncio.run(prometheus_cost(server, count, ticks, concurrency))
    except (RuntimeError, TimeoutError) as exc:  # no Prometheus installed, or it did not come up
        return str(exc).splitlines()[0]
    finally:
        exporter.stop()


def report(label: str, timings: Sequence[float], rules: int) -> None:
    median = statistics.median(timings)
    print(
        f"{label}: median {median * 1000:7.1f} ms/tick, max {max(timings) * 1000:7.1f} ms"
        f"  -> {median / rules * 1e6:6.1f} us/rule"
    )


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__)
    options.add_argument("--rules", type=int, default=1000)
    options.add_argument("--ticks", type=int, default=20)
    options.add_argument("--prometheus-ticks", type=int, default=5)
    options.add_argument("--concurrency", type=int, default=16, help="queries in flight (the engine's default)")
    options.add_argument("--no-prometheus", action="store_true", help="only the engine's own cost")
    args = options.parse_args()

    steady, states = asyncio.run(engine_cost(args.rules, args.ticks, churn=False))
    report(f"engine, {args.rules} rules x {SERIES_PER_RULE} series, steady", steady, args.rules)
    churning, _ = asyncio.run(engine_cost(args.rules, args.ticks, churn=True))
    report(f"engine, {args.rules} rules x {SERIES_PER_RULE} series, all fire/resolve", churning, args.rules)
    print(f"  ({states} series states kept)")
    if args.no_prometheus:
        return
    real = real_prometheus(args.rules, args.prometheus_ticks, args.concurrency)
    if isinstance(real, str):
        print(f"real Prometheus: not measured ({real})")
        return
    report(f"real Prometheus on loopback, {args.rules} rules, {args.concurrency} in flight", real, args.rules)


if __name__ == "__main__":
    main()
