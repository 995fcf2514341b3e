"""Benchmark of scaling out: signed webhooks per second with one worker on the embedded in-memory stores
versus two workers sharing a Redis, and what the Redis store adds to each message.

Three `operator serve` runs on loopback, each driven by wrk with the same signed `help` text through the
whole path (signature, allowlist, rate limit, MessageSid claim, parse, context, command, SMS finishing,
history): one worker on the in-memory stores (the embedded default), one worker on Redis (the store's
cost alone) and two workers on Redis (the scale-out). A Redis server is started on a free loopback port
and stopped afterwards. Then the shared stores are timed directly, per message: the five round trips a
text costs (rate check, MessageSid claim and finish, context get and put).

Prints figures and the ratios; asserts nothing.

    python -m bench.scale [--duration 15] [--connections 32] [--messages 5000]

wrk runs with one thread so that it takes as little as it can of the two cores the workers share.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.webhook import TOKEN, bench_config, signed, start, wrk, wrk_script
from tests.bot.servers_redis import redis_server


async def _per_message(url: str, messages: int) -> list[float]:
    from bot.state.redis.client import redis_client
    from bot.state.redis.conversation import RedisContextStore
    from bot.state.redis.limits import RedisIdempotency, RedisRateLimiter
    from intents.models import Context, Intent

    client = redis_client(url)
    try:
        contexts = RedisContextStore(client, 900, 10_000, prefix="bench:")
        limiter = RedisRateLimiter(client, 1e9, 1e9, global_capacity=1e9, global_per_minute=1e9, prefix="bench:")
        sids = RedisIdempotency(client, prefix="bench:")
        context = Context(Intent.LOGS, {"service": "payment", "level": "error", "range_s": 3600}, alerts=("a", "b"))
        took = []
        for n in range(messages):
            user = f"+1555{n % 500:07d}"
            begin = time.perf_counter()
            await limiter.check(user)
            await sids.claim(f"SM{n}")
            await contexts.get(user)
            await contexts.put(user, context)
            await sids.finish(f"SM{n}", "<Response><Message>ok</Message></Response>")
            took.append(time.perf_counter() - begin)
        return took
    finally:
        await client.aclose()


def store_latency(url: str, messages: int) -> dict[str, float]:
    """Microseconds the shared stores add to one message, against a loopback Redis."""
    asyncio.run(_per_message(url, 500))  # warm-up: scripts loaded, connections open
    took = sorted(asyncio.run(_per_message(url, messages)))
    quantiles = statistics.quantiles(took, n=100)
    return {"p50": quantiles[49] * 1e6, "p99": quantiles[98] * 1e6, "mean": statistics.fmean(took) * 1e6}


def throughput(
    name: str, workers: int, env: dict[str, str], config: Path, folder: Path, args: argparse.Namespace
) -> dict[str, float]:
    body, signature = signed("help")
    script = wrk_script(body, signature, folder)
    operator = str(Path(sys.executable).with_name("operator"))
    bot, url = start([operator, "serve", "--config", str(config), "--workers", str(workers)], env, folder)
    try:
        check = httpx.post(f"{url}/sms", content=body, headers={
            "Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature})  # fmt: skip
        assert check.status_code == 200 and "<Message>" in check.text, check.text
        wrk(url, script, 3, args.connections, threads=1)  # warm every worker
        figures = wrk(url, script, args.duration, args.connections, threads=1)
    finally:
        bot.terminate()
        bot.wait(timeout=30)
    print(f"{name:<28} {figures['rps']:8.0f} req/s  p50 {figures.get('p50', 0):6.2f} ms  "
          f"p99 {figures.get('p99', 0):6.2f} ms  errors {figures['errors']:.0f}")  # fmt: skip
    return figures


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    options.add_argument("--duration", type=int, default=15, help="seconds per wrk run")
    options.add_argument("--connections", type=int, default=32)
    options.add_argument("--messages", type=int, default=5000, help="messages timed against the Redis store")
    args = options.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")

    folder = Path(tempfile.mkdtemp(prefix="operator-bench-scale-"))
    config = bench_config(folder)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OPERATOR_", "REDIS_URL", "DATABASE_URL"))}
    env = {**base, "TWILIO_AUTH_TOKEN": TOKEN, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    try:
        with redis_server() as redis:
            shared = {**env, "REDIS_URL": redis.url}
            print(f"wrk -t1 -c{args.connections} -d{args.duration}s, signed 'help' texts, {os.cpu_count()} cores")
            one = throughput("1 worker, in-memory", 1, env, config, folder, args)
            one_redis = throughput("1 worker, Redis", 1, shared, config, folder, args)
            two = throughput("2 workers, Redis", 2, shared, config, folder, args)
            print(f"2 workers + Redis vs 1 worker + Redis:   {two['rps'] / one_redis['rps']:.2f}x (target >= 1.6x: "
                  "the same stores, one worker against two)")  # fmt: skip
            print(f"2 workers + Redis vs 1 worker in-memory: {two['rps'] / one['rps']:.2f}x (what sharing state costs "
                  "on two cores that also run wrk and Redis)")  # fmt: skip
            latency = store_latency(redis.url, args.messages)
            print(f"Redis store per message ({args.messages} messages, 5 round trips): p50 {latency['p50']:.0f} µs, "
                  f"p99 {latency['p99']:.0f} µs, mean {latency['mean']:.0f} µs (target p99 <= 1000 µs)")  # fmt: skip
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
