"""Benchmark of the monitors: `status` fan-out latency and the formatting path.

`status` runs over N real HTTP backends on loopback, each answering its health check after a known
delay, through the same code as the bot (Prometheus adapters behind their guards, the health cache,
`fan_out`). The result should track the slowest backend, not the sum; with one backend hung it
should come back at the deadline. Run with `python -m bench.monitors`; prints figures only.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Sequence

from bot.settings import DEFAULT_METRICS
from monitors.base import LogLine, LogQuery, LogResult, MetricQuery, MetricResult, Series
from monitors.http import new_client
from monitors.logs_format import format_logs
from monitors.metric_text import format_metric
from monitors.prometheus import Prometheus, PrometheusConfig
from monitors.resilience import Guarded, HealthCache, fan_out

HUNG = -1.0


async def delayed_server(delay_s: float) -> tuple[asyncio.Server, str]:
    """A loopback HTTP server answering every request with 200 after `delay_s` (HUNG: never)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request = await reader.readuntil(b"\r\n\r\n")
                if not request:
                    break
                if delay_s == HUNG:
                    await asyncio.sleep(3600)
                await asyncio.sleep(delay_s)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 6\r\n\r\nReady.")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


async def status_latency(delays: Sequence[float], deadline_s: float, rounds: int, timeout_s: float) -> list[float]:
    """`status` wall time per round; every round starts cold (new guards, empty cache), as the first
    `status` after a backend goes bad would, so a hung check is not shared between rounds."""
    servers = [await delayed_server(d) for d in delays]
    try:
        async with new_client() as client:
            adapters = [
                Prometheus(f"prom{i}", PrometheusConfig(url=url, timeout_s=timeout_s), client, DEFAULT_METRICS)
                for i, (_, url) in enumerate(servers)
            ]
            await fan_out([Guarded(a) for a in adapters], HealthCache(ttl_s=0), deadline_s)  # warm the pool
            timings = []
            for _ in range(rounds):
                monitors = [Guarded(a) for a in adapters]
                started = time.perf_counter()
                checked = await fan_out(monitors, HealthCache(ttl_s=0), deadline_s)
                timings.append(time.perf_counter() - started)
                assert len(checked) == len(monitors)
            return timings
    finally:
        for server, _ in servers:
            server.close()


def formatting_throughput(seconds: float = 1.0) -> tuple[float, float]:
    series = tuple(
        Series({"service": f"svc{i}"}, tuple((1_700_000_000 + 30 * n, 40 + (n % 17)) for n in range(120)))
        for i in range(5)
    )
    metric = MetricResult(MetricQuery("cpu", "checkout", 3600), series=series, unit="%")
    logs = LogResult(LogQuery(("timeout",), "payment", "error", 3600),
                     tuple(LogLine(1_700_000_000 - n, f"ERROR request {n} timed out after 30s", "payment")
                           for n in range(5)))  # fmt: skip
    rates = []
    for render in (lambda: format_metric(metric), lambda: _format_logs(logs)):
        count, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            render()
            count += 1
        rates.append(count / (time.perf_counter() - started))
    return rates[0], rates[1]


def _format_logs(result: LogResult) -> str:
    return format_logs(result)


def ms(values: Sequence[float]) -> str:
    return f"median {statistics.median(values) * 1000:7.1f} ms  max {max(values) * 1000:7.1f} ms"


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__)
    options.add_argument("--backends", type=int, default=8)
    options.add_argument("--rounds", type=int, default=20)
    options.add_argument("--deadline", type=float, default=8.0, help="status deadline (s); the bot's default is 8")
    options.add_argument("--hung-rounds", type=int, default=3)
    args = options.parse_args()
    delays = [0.01 * (i + 1) for i in range(args.backends)]  # 10, 20, ... ms
    slowest = max(delays)

    healthy = asyncio.run(status_latency(delays, args.deadline, args.rounds, timeout_s=3.0))
    overhead = statistics.median(healthy) - slowest
    print(f"status, {args.backends} healthy backends (slowest {slowest * 1000:.0f} ms): {ms(healthy)}"
          f"  -> {overhead * 1000:+.1f} ms over the slowest")  # fmt: skip

    with_hung = [*delays[:-1], HUNG]
    hung = asyncio.run(
        status_latency(with_hung, args.deadline, args.hung_rounds, timeout_s=args.deadline + 5)
    )  # the backend's own timeout is longer than the deadline: the deadline must decide
    late = statistics.median(hung) - args.deadline
    print(f"status, {args.backends} backends, one hung (deadline {args.deadline:g} s): {ms(hung)}"
          f"  -> {late * 1000:+.1f} ms over the deadline")  # fmt: skip

    metric_rate, log_rate = formatting_throughput()
    print(f"formatting: range metric (5 series x 120 points) {metric_rate:,.0f}/s, log answer {log_rate:,.0f}/s")


if __name__ == "__main__":
    main()
