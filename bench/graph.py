"""Benchmark of `graph`'s chart: render time (the first call, which imports matplotlib, then steady state) and
PNG size, for a 6 h chart at Prometheus's 15 s step (1,440 points a series).

Run with `python -m bench.graph`. Prints figures; asserts nothing (the targets, <= 300 ms and <= 60 KiB at
800x480, are tracked in the issue notes, not in timed tests).
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import time

from monitors.base import Series

NOW = 1_700_000_000.0

FIRST_CALL = """
import time
t0 = time.perf_counter()
from bench.graph import latency_series
from bot.charts.render import render_png
t1 = time.perf_counter()
series = latency_series(1, {points})
t2 = time.perf_counter()
render_png(series, title="checkout latency, last 6h", unit="s", width_px={width}, height_px={height})
t3 = time.perf_counter()
render_png(series, title="checkout latency, last 6h", unit="s", width_px={width}, height_px={height})
t4 = time.perf_counter()
print(t1 - t0, t3 - t2, t4 - t3)
"""


def latency_series(count: int, points: int, step: float = 15.0) -> list[Series]:
    """Latency-like random walks with noise and one spike: lines as ragged (and as hard to compress) as real ones."""
    out = []
    for number in range(count):
        rng = random.Random(number)
        base = 0.05 * (number + 1)
        value, values = base, []
        for index in range(points):
            value = max(base * 0.1, value + rng.gauss(0, base * 0.03))
            spike = 3.0 if points * 0.4 < index < points * 0.43 else 1.0
            values.append((NOW - (points - index) * step, value * rng.uniform(0.9, 1.1) * spike))
        out.append(Series({"service": f"service-{number}"}, tuple(values)))
    return out


def bench_first_call(points: int, width: int, height: int, runs: int) -> None:
    """In a fresh interpreter each time, as after a deploy: matplotlib is imported by the first render."""
    code = FIRST_CALL.format(points=points, width=width, height=height)
    imports, firsts, seconds = [], [], []
    for _ in range(runs):
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        module, first, second = (float(x) for x in result.stdout.split())
        imports.append(module)
        firsts.append(first)
        seconds.append(second)
    print(
        f"first render      {statistics.median(firsts) * 1000:8.0f} ms in a fresh process, matplotlib import "
        f"included (then {statistics.median(seconds) * 1000:.0f} ms; `import bot.charts.render` "
        f"{statistics.median(imports) * 1000:.0f} ms), median of {runs}"
    )


def bench_steady(count: int, points: int, width: int, height: int, renders: int) -> None:
    from bot.charts.render import render_png

    series = latency_series(count, points)
    render_png(series, title="warm-up", unit="s", width_px=width, height_px=height)
    samples, size = [], 0
    for _ in range(renders):
        t0 = time.perf_counter()
        size = len(render_png(series, title="checkout latency, last 6h", unit="s", width_px=width, height_px=height))
        samples.append(time.perf_counter() - t0)
    samples.sort()
    p95 = samples[min(len(samples) - 1, int(len(samples) * 0.95))]
    print(
        f"{count} series x {points:<5}  median {statistics.median(samples) * 1000:5.0f} ms  p95 {p95 * 1000:5.0f} ms  "
        f"PNG {size / 1024:5.1f} KiB  ({width}x{height}, {renders} renders)"
    )


def bench_text(points: int) -> None:
    from bot.charts.text import chart_text

    series = latency_series(5, points)
    t0 = time.perf_counter()
    for _ in range(100):
        text = chart_text(series, title="checkout latency, last 6h", unit="s")
    print(f"text fallback     {(time.perf_counter() - t0) * 10:8.2f} ms for 5 series, {len(text)} characters")


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__)
    options.add_argument("--width", type=int, default=800)
    options.add_argument("--height", type=int, default=480)
    options.add_argument("--points", type=int, default=6 * 3600 // 15, help="points a series (6 h at 15 s: 1440)")
    options.add_argument("--renders", type=int, default=50)
    options.add_argument("--fresh", type=int, default=3, help="fresh processes for the first-call figure")
    args = options.parse_args()
    bench_first_call(args.points, args.width, args.height, args.fresh)
    for count in (1, 5):
        bench_steady(count, args.points, args.width, args.height, args.renders)
    bench_steady(1, 11_000, args.width, args.height, args.renders // 5)  # Prometheus's most points a series
    bench_steady(1, args.points, 1600, 960, args.renders // 5)
    bench_text(args.points)


if __name__ == "__main__":
    main()
