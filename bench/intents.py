"""Benchmark of the intent pipeline: parse latency and throughput, context memory, start-up time, and the
same texts side by side against an earlier commit.

Run with `make bench` or `python -m bench.intents`. Prints figures; asserts nothing (targets are
tracked in the issue notes, not in timed tests).

`python -m bench.intents --against bf6ef8d` exports that commit's tree with `git archive` into a
temporary directory (read-only for the repository: no worktree is registered in the shared `.git`)
and runs the same texts through both parsers, each in its own fresh process, the way
`operator intents parse --jsonl` does (one `ContextualParser`, per-user context, the full trace).
Rounds alternate between the two trees so that machine noise falls on both; it prints µs per text
(the median round), p50/p99 of single parses, the ratio, and process start to the first parse.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

from bot.state.memory.context import InMemoryContextStore
from intents import Context, Intent, Parser, remember

ROOT = Path(__file__).resolve().parent.parent
CASES = ROOT / "tests" / "intents" / "cases"
CONFIG = ROOT / "tests" / "intents" / "corpus.yaml"


def corpus(size: int, seed: int = 7) -> list[str]:
    """The case texts plus shuffled recombinations of their words, long texts and junk."""
    texts = [json.loads(line)["text"] for path in sorted(CASES.glob("*.jsonl")) for line in path.open()]
    words = " ".join(texts).split()
    rng = random.Random(seed)
    mixed = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 12))) for _ in range(size)]
    extremes = ["", "🔥" * 200, "status " * 300, "a" * 2000, "logs " + " ".join(words[:400])]
    return texts + mixed + extremes


def conversation(total: int, seed: int = 7) -> list[dict[str, str]]:
    """`total` {"user", "text"} lines: every case file in order (with its users, so follow-ups meet their
    context), the long and junk extremes, then recombined case words from a few dozen users."""
    lines = [
        {"user": str(case.get("user", "")), "text": str(case["text"])}
        for path in sorted(CASES.glob("*.jsonl"))
        for case in map(json.loads, path.read_text("utf-8").splitlines())
    ]
    rng = random.Random(seed)
    generated = corpus(max(total - len(lines), 0), seed)[len(lines) :]
    extremes, mixed = generated[-5:], generated[:-5]
    lines += [{"user": "+15550009999", "text": text} for text in extremes]
    lines += [{"user": f"+1555000{rng.randint(0, 40):04d}", "text": text} for text in mixed]
    return lines[:total]


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


# --- side by side against an earlier commit --------------------------------------------------------

WORKER = r"""
import json, sys, time
started = float(sys.argv[3])
try:  # the layout since the rooms (issue 11), then the one before it
    from bot.cli.intent_tools import ContextualParser
except ImportError:
    from bot.intent_tools import ContextualParser
from intents import Parser
from bot.settings import catalog_settings
lines = [json.loads(line) for line in open(sys.argv[1], encoding="utf-8")]
parser = ContextualParser(Parser(catalog_settings(sys.argv[2]).catalog()))
parser.explain(lines[0]["user"], lines[0]["text"])
first = time.time() - started
samples = []
clock = time.perf_counter_ns
t0 = clock()
for line in lines[1:]:
    t = clock()
    parser.explain(line["user"], line["text"])
    samples.append(clock() - t)
total = clock() - t0
print(json.dumps({"first_parse_s": first, "total_ns": total, "samples_ns": samples}))
"""
"""One run in a fresh process: build the parser from the config as the CLI does, time the first parse
from process start (the wall clock the parent read before spawning), then every other text."""


@dataclass
class Run:
    first_parse_s: float
    per_text_us: float
    p50_us: float
    p99_us: float


def run_worker(tree: Path, texts: Path, config: Path) -> Run:
    env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONHASHSEED": "0"}
    started = time.time()
    result = subprocess.run(
        [sys.executable, "-c", WORKER, str(texts), str(config), repr(started)],
        capture_output=True,
        text=True,
        check=True,
        cwd=tree,
        env=env,
    )
    data = json.loads(result.stdout.strip().splitlines()[-1])
    samples = sorted(data["samples_ns"])
    return Run(
        first_parse_s=data["first_parse_s"],
        per_text_us=data["total_ns"] / len(samples) / 1000,
        p50_us=samples[len(samples) // 2] / 1000,
        p99_us=samples[int(len(samples) * 0.99)] / 1000,
    )


def export(revision: str, into: Path) -> str:
    """The tree of `revision` under `into` (by `git archive`), and its short commit id."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", f"{revision}^{{commit}}"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    archive = subprocess.run(["git", "archive", "--format=tar", commit], cwd=ROOT, capture_output=True, check=True)
    tar_path = into / "tree.tar"
    tar_path.write_bytes(archive.stdout)
    with tarfile.open(tar_path) as tar:
        tar.extractall(into / "tree", filter="data")
    return commit


def bench_against(revision: str, total: int, rounds: int) -> None:
    lines = conversation(total)
    with tempfile.TemporaryDirectory(prefix="bench-intents-") as scratch:
        directory = Path(scratch)
        commit = export(revision, directory)
        texts = directory / "texts.jsonl"
        texts.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines), "utf-8")
        trees = {"this tree": ROOT, commit: directory / "tree"}
        runs: dict[str, list[Run]] = {name: [] for name in trees}
        for _ in range(rounds):
            for name, tree in trees.items():
                runs[name].append(run_worker(tree, texts, CONFIG))
    print(f"side by side      {len(lines)} texts, {rounds} alternating rounds each, fresh process per round")
    print(f"{'':18}{'µs/text':>9}{'p50 µs':>9}{'p99 µs':>9}{'first parse ms':>16}")
    summary: dict[str, tuple[float, float, float, float]] = {}
    for name, done in runs.items():
        row = (
            statistics.median(r.per_text_us for r in done),
            statistics.median(r.p50_us for r in done),
            statistics.median(r.p99_us for r in done),
            statistics.median(r.first_parse_s for r in done) * 1000,
        )
        summary[name] = row
        print(f"  {name:<16}{row[0]:9.0f}{row[1]:9.0f}{row[2]:9.0f}{row[3]:16.0f}")
    ours, theirs = summary["this tree"], summary[commit]
    print(
        f"  ratio           {theirs[0] / ours[0]:8.2f}x faster per text than {commit} "
        f"(start-up {theirs[3] / ours[3]:.2f}x)"
    )


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    options.add_argument("--texts", type=int, default=3000, help="synthetic texts added to the case texts")
    options.add_argument("--rounds", type=int, default=2)
    options.add_argument("--users", type=int, default=100_000)
    options.add_argument("--startups", type=int, default=5)
    options.add_argument("--against", metavar="COMMIT", help="also run the same texts through this commit's parser")
    options.add_argument("--total", type=int, default=5000, help="texts in the side-by-side run")
    options.add_argument("--against-rounds", type=int, default=3, help="alternating rounds in the side-by-side run")
    args = options.parse_args()
    if args.against:
        bench_against(args.against, args.total, args.against_rounds)
        return
    parser = Parser()
    texts = corpus(args.texts)
    print(f"corpus            {len(texts)} texts")
    bench_parse(parser, texts, args.rounds)
    bench_context_memory(args.users)
    bench_startup(args.startups)


if __name__ == "__main__":
    main()
