"""Benchmark of the intent pipeline: parse latency and throughput, context memory, start-up time.

Run with `make bench` or `python -m bench.intents`. Prints figures; asserts nothing (targets are
tracked in the issue notes, not in timed tests).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

from bot.state.memory.context import InMemoryContextStore
from intents import Context, Intent, Parser, remember

CASES = Path(__file__).resolve().parent.parent / "tests" / "intents" / "cases"


def corpus(size: int, seed: int = 7) -> list[str]:
    """The case texts plus shuffled recombinations of their words, long texts and junk."""
    texts = [json.loads(line)["text"] for path in sorted(CASES.glob("*.jsonl")) for line in path.open()]
    words = " ".join(texts).split()
    rng = random.Random(seed)
    mixed = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 12))) for _ in range(size)]
    extremes = ["", "🔥" * 200, "status " * 300, "a" * 2000, "logs " + " ".join(words[:400])]
    return texts + mixed + extremes


def bench_parse(parser: Parser, texts: list[str], rounds: int) -> None:
    for text in texts[:200]:  # warm caches
        parser.parse(text)
    samples: list[int] = []
    context = Context()
    started = time.perf_counter()
    for _ in range(rounds):
        for text in texts:
            t0 = time.perf_counter_ns()
            parse = parser.parse(text, context)
            samples.append(time.perf_counter_ns() - t0)
            context = remember(context, parse)
    elapsed = time.perf_counter() - started
    samples.sort()
    p50 = samples[len(samples) // 2] / 1000
    p99 = samples[int(len(samples) * 0.99)] / 1000
    print(f"parse latency     p50 {p50:8.0f} µs   p99 {p99:8.0f} µs   max {samples[-1] / 1000:8.0f} µs")
    print(f"parse throughput  {len(samples) / elapsed:8.0f} texts/s (one core, {len(samples)} texts, with context)")
    short = [t for t in texts if 0 < len(t) <= 60]
    t0 = time.perf_counter()
    for text in short:
        parser.parse(text)
    print(f"short texts       {len(short) / (time.perf_counter() - t0):8.0f} texts/s (<= 60 chars, typical SMS)")


def bench_context_memory(users: int) -> None:
    contexts = [
        Context(Intent.LOGS, {"service": "payment", "level": "error", "terms": ("timeout",), "range_s": 3600}),
        Context(Intent.METRICS, {"metric": "latency", "service": "checkout", "range_s": 21600}),
        Context(Intent.ALERTS, {"state": "firing"}, alerts=("HighCPU", "DiskFull", "SSLCertExpiring")),
    ]
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    store = InMemoryContextStore(max_users=users)
    for number in range(users):
        # Each user's context is its own object, as after real parses (nothing shared between users).
        template = contexts[number % len(contexts)]
        store.put_now(f"+1555{number:07d}", Context(template.intent, dict(template.slots), alerts=template.alerts))
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    per_user = (after - before) / users
    print(f"context memory    {per_user:8.0f} B/user at {users:,} users ({(after - before) / 2**20:.1f} MiB in all)")


def bench_startup(runs: int) -> None:
    code = "import time; t=time.perf_counter(); from intents import Parser; p=Parser(); p.parse('status'); " \
           "print(time.perf_counter()-t)"  # fmt: skip
    inner, outer = [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        outer.append(time.perf_counter() - t0)
        inner.append(float(result.stdout.strip()))
    print(
        f"start-up          {statistics.median(outer) * 1000:8.0f} ms process start to first parse "
        f"({statistics.median(inner) * 1000:.0f} ms import + build + parse), median of {runs}"
    )


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__)
    options.add_argument("--texts", type=int, default=3000, help="synthetic texts added to the case texts")
    options.add_argument("--rounds", type=int, default=2)
    options.add_argument("--users", type=int, default=100_000)
    options.add_argument("--startups", type=int, default=5)
    args = options.parse_args()
    parser = Parser()
    texts = corpus(args.texts)
    print(f"corpus            {len(texts)} texts")
    bench_parse(parser, texts, args.rounds)
    bench_context_memory(args.users)
    bench_startup(args.startups)


if __name__ == "__main__":
    main()
