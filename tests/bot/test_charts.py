"""The chart is checked from its pixels: the line's colour is looked for in each column of the plot area and
its height compared with the data, so a chart that renders but draws the wrong thing fails."""

from __future__ import annotations

import io
import math
import random
from collections.abc import Sequence

import numpy as np
import pytest
from PIL import Image

from bot.charts.render import Chart, render, render_png
from bot.charts.scales import MAX_DRAWN, NO_DATA, PALETTE, series_labels, title_for
from bot.charts.text import chart_text, sparkline
from bot.sms.encoding import is_gsm7, segment_count, septets
from monitors.base import Series
from monitors.formatting import human

NOW = 1_700_000_000.0
NAN = math.nan
SIX_HOURS = 6 * 3600


def points(values: Sequence[float], step: float = 15.0, end: float = NOW) -> tuple[tuple[float, float], ...]:
    return tuple((end - (len(values) - 1 - n) * step, float(value)) for n, value in enumerate(values))


def noisy(count: int = 1440, base: float = 0.25, seed: int = 1) -> tuple[float, ...]:
    """A latency-like random walk with noise: the hardest kind of line to compress."""
    rng = random.Random(seed)
    value, out = base, []
    for _ in range(count):
        value = max(base * 0.1, value + rng.gauss(0, base * 0.03))
        out.append(value * rng.uniform(0.9, 1.1))
    return tuple(out)


def decode(png: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(png))
    image.load()
    assert image.format == "PNG"
    return image


def rgb(colour: str) -> np.ndarray:
    return np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])


def line_heights(chart: Chart, colour: str, tolerance: int = 60) -> dict[int, float]:
    """For each pixel column of the plot area, the median row (image pixels) of the pixels in `colour`."""
    pixels = np.asarray(decode(chart.png).convert("RGB"), dtype=int)
    left, top, right, bottom = chart.plot_box
    near = np.abs(pixels[top:bottom, left:right] - rgb(colour)).sum(axis=2) < tolerance
    return {
        left + x: top + float(np.median(np.flatnonzero(near[:, x]))) for x in range(right - left) if near[:, x].any()
    }


def column_of(chart: Chart, t: float) -> float:
    left, _, right, _ = chart.plot_box
    start, end = chart.x_limits
    return left + (t - start) / (end - start) * (right - left)


def row_of(chart: Chart, value: float) -> float:
    _, top, _, bottom = chart.plot_box
    low, high = chart.y_limits
    return bottom - (value - low) / (high - low) * (bottom - top)


def step_then_ramp() -> Series:
    """6 h at 1-minute steps: flat at 10 for 2 h, 90 for 2 h, then a ramp back down to 10."""
    values = [10.0] * 120 + [90.0] * 120 + list(np.linspace(90, 10, 120))
    return Series({"service": "checkout"}, points(values, step=60))


def render_one(series: Sequence[Series], unit: str = "", width: int = 800, height: int = 480, **kw: object) -> Chart:
    return render(series, title="checkout latency, last 6h", unit=unit, width_px=width, height_px=height, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(("width", "height"), [(800, 480), (320, 240), (1201, 677), (200, 150)])
def test_the_png_has_exactly_the_configured_size(width: int, height: int) -> None:
    png = render_png([step_then_ramp()], title="x", unit="%", width_px=width, height_px=height)
    assert decode(png).size == (width, height)


@pytest.mark.parametrize("count", [1, MAX_DRAWN])
def test_a_six_hour_chart_at_15s_steps_stays_under_60_kib(count: int) -> None:
    series = [Series({"service": f"s{n}"}, points(noisy(seed=n))) for n in range(count)]
    png = render_png(series, title="checkout latency, last 6h", unit="s", width_px=800, height_px=480, now=NOW)
    assert len(series[0].points) == SIX_HOURS // 15
    assert len(png) <= 60 * 1024
    assert decode(png).size == (800, 480)


def test_the_line_follows_the_data() -> None:
    series = step_then_ramp()
    chart = render_one([series])
    heights = line_heights(chart, chart.colours[0])
    left, top, right, bottom = chart.plot_box
    assert len(heights) > (right - left) * 0.95  # the line crosses the whole plot
    times = [t for t, _ in series.points]
    assert chart.x_limits == (times[0], times[-1])
    step_column = column_of(chart, (times[119] + times[120]) / 2)
    low_row, high_row = row_of(chart, 10), row_of(chart, 90)
    assert high_row < low_row  # a higher value is higher up
    flat_low = [y for x, y in heights.items() if x < step_column - 4]
    flat_high = [y for x, y in heights.items() if step_column + 4 < x < column_of(chart, times[239]) - 4]
    ramp = [heights[x] for x in sorted(heights) if column_of(chart, times[241]) < x < right - 8]
    assert max(flat_low) - min(flat_low) <= 2 and abs(np.median(flat_low) - low_row) <= 3
    assert max(flat_high) - min(flat_high) <= 2 and abs(np.median(flat_high) - high_row) <= 3
    # the step: the first column that is nearer the high level than the low one is where the step is
    first_high = min(x for x, y in heights.items() if y < (low_row + high_row) / 2)
    assert abs(first_high - step_column) <= 3
    assert all(later >= earlier - 1 for earlier, later in zip(ramp, ramp[1:], strict=False))  # falls steadily
    assert ramp[-1] - ramp[0] > 0.8 * (low_row - high_row)
    assert top <= min(heights.values()) and max(heights.values()) <= bottom


def test_two_series_are_drawn_in_their_own_colours() -> None:
    rising = Series({"service": "api"}, points(np.linspace(0, 100, 240), step=60))
    flat = Series({"service": "web"}, points([50.0] * 240, step=60))
    chart = render_one([flat, rising])
    assert chart.drawn == (1, 0)  # highest peak first
    assert chart.colours[0] != chart.colours[1]
    up, level = line_heights(chart, chart.colours[0]), line_heights(chart, chart.colours[1])
    middle = column_of(chart, rising.points[120][0])
    assert np.median([y for x, y in up.items() if x < middle - 10]) > row_of(chart, 50) + 20  # below the flat line
    assert np.median([y for x, y in up.items() if x > middle + 10]) < row_of(chart, 50) - 20  # then above it
    assert max(level.values()) - min(level.values()) <= 2
    assert abs(np.median(list(level.values())) - row_of(chart, 50)) <= 3
    ups = [up[x] for x in sorted(up) if abs(x - middle) > 10]
    assert all(later <= earlier + 1 for earlier, later in zip(ups, ups[1:], strict=False))  # the rising one rises


def test_nan_values_and_missing_samples_are_gaps() -> None:
    hour = [50.0] * 60
    with_nan = points(hour + [NAN] * 60 + hour, step=60, end=NOW - 7200)
    resumed = points(hour, step=60, end=NOW)  # after an hour with no samples at all
    chart = render_one([Series({}, with_nan + resumed)])
    heights = line_heights(chart, chart.colours[0])
    hour_px = column_of(chart, NOW) - column_of(chart, NOW - 3600)
    for gap_start in (NOW - 4 * 3600, NOW - 2 * 3600):
        middle = column_of(chart, gap_start + 1800)
        assert not [x for x in heights if abs(x - middle) < hour_px / 3]
        assert [x for x in heights if abs(x - middle) < hour_px * 0.9]  # drawn either side


def test_only_the_highest_peaks_are_drawn() -> None:
    series = [Series({"service": f"s{n}"}, points([n, n + 1.0])) for n in range(8)]
    chart = render_one(series)
    assert chart.drawn == (7, 6, 5, 4, 3) and chart.omitted == 3
    assert chart.colours == PALETTE[:MAX_DRAWN]


def test_the_time_axis_runs_to_now_when_the_data_stopped_before() -> None:
    series = Series({}, points([1, 2, 3], step=60, end=NOW - 600))
    assert render_one([series], now=NOW).x_limits == (NOW - 720, NOW)
    assert render_one([series]).x_limits == (NOW - 720, NOW - 600)
    assert render_one([series], now=NOW - 3600).x_limits == (NOW - 720, NOW - 600)  # a clock behind the data


def test_the_value_axis_is_in_the_series_unit() -> None:
    series = Series({}, points([2 * 2**20, 6 * 2**20, 4 * 2**20]))
    chart = render_one([series], unit="bytes")
    assert chart.y_limits[0] <= 2 * 2**20 and chart.y_limits[1] >= 6 * 2**20
    assert chart.y_limits[1] < 8 * 2**20  # not padded into another scale


def test_no_data_is_still_a_picture() -> None:
    for series in ([], [Series({}, ())], [Series({}, points([math.nan] * 5))]):
        chart = render_one(series)
        assert decode(chart.png).size == (800, 480) and chart.drawn == ()
        pixels = np.asarray(decode(chart.png).convert("L"))
        assert (pixels[200:300] < 128).any()  # the "no data" text, mid-height


HOSTILE = "x\x00\x1b[31m$\\frac{1}{" + "y" * 10_000 + "\u202e\U0001f525\n\t$x^2$"

EDGE_CASES = {
    "empty": [],
    "no-points": [Series({}, ())],
    "one-point": [Series({}, ((NOW, 5.0),))],
    "two-at-the-same-time": [Series({}, ((NOW, 1.0), (NOW, 2.0)))],
    "nan-and-inf": [Series({}, points([1, math.nan, 2, math.inf, -math.inf, 3, math.nan, 4]))],
    "all-nan": [Series({}, points([math.nan] * 10))],
    "isolated-points": [Series({}, points([1, math.nan, 2, math.nan, 3]))],
    "constant": [Series({}, points([7.0] * 100))],
    "zero": [Series({}, points([0.0] * 100))],
    "huge": [Series({}, points([1e300, 1.7e308, -1.7e308, 3e300]))],
    "tiny": [Series({}, points([1e-300, 5e-324, 3e-300]))],
    "tiny-range": [Series({}, points([1e-250, 3e-250, 2e-250]))],
    "big-and-close": [Series({}, points([1e9, 1e9 + 1e-6, 1e9 + 2e-6]))],
    "negative": [Series({}, points([-5, -3, -1e6]))],
    "hostile-labels": [
        Series({"a": HOSTILE, "b": "1"}, points([1, 2])),
        Series({"a": HOSTILE, "b": "2"}, points([2, 1])),
    ],
    "same-labels": [Series({"a": "1"}, points([1, 2])), Series({"a": "1"}, points([2, 1]))],
    "bad-times": [Series({}, ((math.nan, 1.0), (1e300, 2.0), (-1e300, 2.0), (NOW, 3.0), (NOW + 15, 4.0)))],
    "unsorted": [Series({}, ((NOW, 1.0), (NOW - 100, 2.0), (NOW - 50, 3.0)))],
    "fifty-years": [Series({}, ((0.0, 1.0), (NOW, 2.0)))],
    "a-gap-in-time": [Series({}, points([1, 2, 3]) + points([4, 5, 6], end=NOW + 3600))],
    "fifty-series": [Series({"i": str(n)}, points([n, n + 1.0])) for n in range(50)],
}


@pytest.mark.parametrize("unit", ["", "%", "bytes", "s", "/s", "furlongs"])
@pytest.mark.parametrize("case", list(EDGE_CASES))
def test_edge_cases_give_a_valid_png_of_the_right_size(case: str, unit: str) -> None:
    png = render_png(EDGE_CASES[case], title=HOSTILE, unit=unit, width_px=800, height_px=480, now=NOW)
    assert decode(png).size == (800, 480)


@pytest.mark.parametrize("case", list(EDGE_CASES))
def test_edge_cases_fit_the_smallest_chart(case: str) -> None:
    png = render_png(EDGE_CASES[case], title=HOSTILE, unit="bytes", width_px=200, height_px=150, now=NOW)
    assert decode(png).size == (200, 150)


def test_a_chart_size_out_of_bounds_is_refused() -> None:
    with pytest.raises(ValueError):
        render_png([], title="x", unit="", width_px=0, height_px=480)


def test_series_labels_keep_the_differing_label_values_cleaned() -> None:
    series = [
        Series({"__name__": "up", "service": "api", "job": "node"}, ()),
        Series({"__name__": "up", "service": "web", "job": "node"}, ()),
        Series({"__name__": "up", "service": HOSTILE, "job": "node"}, ()),
    ]
    labels = series_labels(series, limit=30)
    assert labels[:2] == ["api", "web"]
    assert len(labels[2]) <= 30 and labels[2].isascii() and labels[2].isprintable()
    assert series_labels([Series({"a": "1"}, ()), Series({"a": "1"}, ())]) == ["series 1", "series 2"]


def test_title_for() -> None:
    assert title_for("latency", "checkout", 6 * 3600) == "checkout latency, last 6h"
    assert title_for("cpu", None, 900) == "cpu, last 15m"
    assert title_for("cpu") == "cpu"
    assert "\n" not in title_for("x\ny", "a" * 500, 60) and len(title_for("x", "a" * 500, 60)) < 100


# --- text fallback ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "width", "expected"),
    [
        pytest.param([1, 2, 3, 4, 5], 24, "_.-*'", id="rising"),
        pytest.param([5, 4, 3, 2, 1], 24, "'*-._", id="falling"),
        pytest.param([3, 3, 3], 24, "---", id="flat"),
        pytest.param([1, NAN, 3, math.inf, 5], 24, "_ - '", id="gaps"),
        pytest.param([42], 24, "-", id="one-point"),
        pytest.param([], 24, "", id="empty"),
        pytest.param([NAN, NAN], 24, "  ", id="all-gaps"),
        pytest.param([0] * 50 + [9] + [0] * 49, 10, "_____'____", id="a-spike-survives-resampling"),
        pytest.param(list(range(100)), 5, "_.-*'", id="resampled-rising"),
        pytest.param([-1.7e308, 1.7e308], 24, "_'", id="extremes"),
    ],
)
def test_sparkline(values: list[float], width: int, expected: str) -> None:
    assert sparkline(values, width) == expected


@pytest.mark.parametrize("count", [0, 1, 5, 23, 24, 25, 100, 1440])
@pytest.mark.parametrize("width", [1, 8, 24])
def test_sparkline_is_gsm7_basic_and_respects_its_width(count: int, width: int) -> None:
    rng = random.Random(count * 100 + width)
    values = [rng.choice([NAN, rng.uniform(-5, 5)]) for _ in range(count)]
    line = sparkline(values, width)
    assert len(line) == min(count, width)
    assert is_gsm7(line) and septets(line) == len(line)  # basic table: one septet each, no escapes


def test_sparkline_width_must_be_positive() -> None:
    with pytest.raises(ValueError):
        sparkline([1.0], 0)


def test_chart_text_for_one_series() -> None:
    values = noisy()
    text = chart_text([Series({"service": "checkout"}, points(values))], title="checkout latency, last 6h", unit="s")
    title, spark, figures = text.split("\n")
    assert title == "checkout latency, last 6h"
    assert spark == sparkline(values, 24)
    assert figures == f"min {human(min(values), 's')} max {human(max(values), 's')} last {human(values[-1], 's')}"
    assert is_gsm7(text) and segment_count(text) <= 2


def test_chart_text_for_several_series_shows_the_three_highest() -> None:
    series = [Series({"service": name}, points([n, n * 10.0])) for n, name in enumerate(["a", "b", "c", "d", "e"], 1)]
    lines = chart_text(series, title="error rate, last 1h", unit="%").split("\n")
    assert lines[0] == "error rate, last 1h"
    assert [line.split(":")[0] for line in lines[1:4]] == ["e", "d", "c"]
    assert f"max {human(50.0, '%')}" in lines[1] and f"last {human(50.0, '%')}" in lines[1]
    assert lines[4] == "+2 more" and len(lines) == 5
    assert segment_count("\n".join(lines)) <= 3


def test_chart_text_without_data_says_so() -> None:
    assert chart_text([], title="cpu, last 1h", unit="%") == f"cpu, last 1h\n{NO_DATA}"
    assert chart_text([Series({}, points([NAN]))], title="cpu", unit="%") == f"cpu\n{NO_DATA}"


@pytest.mark.parametrize("case", list(EDGE_CASES))
def test_chart_text_takes_the_edge_cases_too(case: str) -> None:
    text = chart_text(EDGE_CASES[case], title="x", unit="bytes")
    assert is_gsm7(text) and text.startswith("x\n") and segment_count(text) <= 3


def test_chart_text_is_gsm7_whatever_the_labels_say() -> None:
    series = [Series({"service": HOSTILE + str(n)}, points([1.0, 2.0, NAN])) for n in range(4)]
    text = chart_text(series, title=HOSTILE, unit="bytes")
    assert is_gsm7(text)
    assert len(text.split("\n")) == 5  # title, three series, "+1 more": no line breaks smuggled in
    assert segment_count(text) <= 3
