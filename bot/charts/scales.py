"""A chart's axes as numbers: which series are drawn, in which unit, where the ticks go and how they read.

Pure arithmetic (NumPy, no matplotlib), so the render module only draws what is decided here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from monitors.base import Series
from monitors.formatting import duration, human, safe

NO_DATA = "no data in this range"

Floats = npt.NDArray[np.float64]

PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00")
"""Line colours in drawing order: the Okabe-Ito palette, told apart by colour-blind readers, none pale on white."""
MAX_DRAWN = len(PALETTE)
"""More lines than this are a tangle on a phone: the rest are counted in a note under the title."""
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_X_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800)
_LIMIT = 1e200
"""Values beyond ±this (or nearer zero than its inverse) are clamped: no metric is that big, and the axis
arithmetic stays clear of float overflow and of matplotlib's "singular limits" rescue."""
_EARLIEST, _LATEST = 0.0, 32_503_680_000.0
"""1970 and 3000: samples timed outside are garbage, dropped, and the axis stays where dates can be printed."""


class Scale(NamedTuple):
    divisor: float
    suffix: str


@dataclass(frozen=True)
class Line:
    index: int
    label: str
    times: Floats
    values: Floats
    """In axis units (divided by the scale), NaN where the line breaks."""
    tag: str
    """The last finite value as the SMS answer prints it ("230 ms", "1.5 MiB")."""


def title_for(metric: str, service: str | None = None, range_s: float | None = None) -> str:
    """ "checkout latency, last 6h": the title both the picture and the text fallback start with."""
    name = " ".join(safe(part, 40) for part in (service, metric) if part)
    return f"{name}, last {duration(range_s)}" if range_s else name


def series_labels(series: Sequence[Series], limit: int = 40) -> list[str]:
    """A name for each series from the label values that tell it apart from the others ("api", "web").

    Labels every series shares say nothing in a legend, so only the differing ones are kept. Series that no
    label tells apart are numbered.
    """
    keys = sorted({key for one in series for key in one.labels})
    differing = [key for key in keys if len({one.labels.get(key, "") for one in series}) > 1]
    labels = [_label(one.labels, differing, limit) for one in series]
    return [label or f"series {number}" for number, label in enumerate(labels, 1)]


def _label(labels: Mapping[str, str], keys: Sequence[str], limit: int) -> str:
    return safe(", ".join(str(labels[key]) for key in keys if labels.get(key)), limit)


def _arrays(one: Series) -> tuple[Floats, Floats]:
    """Times and values, sorted by time, with NaN for non-finite values and where samples are missing.

    A missing stretch (no sample for over three usual steps: a scrape failed, the series went away) breaks the
    line instead of drawing a straight bridge that looks like data.
    """
    try:
        raw = np.asarray(one.points, dtype=np.float64).reshape(-1, 2)
    except (TypeError, ValueError):
        raw = np.empty((0, 2))
    raw = raw[(raw[:, 0] >= _EARLIEST) & (raw[:, 0] <= _LATEST)]  # also drops NaN times
    raw = raw[np.argsort(raw[:, 0], kind="stable")]
    times, values = raw[:, 0], raw[:, 1].copy()
    with np.errstate(invalid="ignore"):
        values[~np.isfinite(values)] = np.nan
        tiny = np.abs(values) < 1 / _LIMIT
    values[tiny] = 0.0
    values = np.clip(values, -_LIMIT, _LIMIT)
    if len(times) > 2:
        steps = np.diff(times)
        breaks = np.flatnonzero(steps > 3 * float(np.median(steps))) + 1
        if len(breaks):
            times = np.insert(times, breaks, (times[breaks - 1] + times[breaks]) / 2)
            values = np.insert(values, breaks, np.nan)
    return times, values


def _peak(values: Floats) -> float | None:
    finite = values[np.isfinite(values)]
    return float(finite.max()) if len(finite) else None


def _chosen(series: Sequence[Series]) -> list[tuple[int, Floats, Floats]]:
    """The series worth drawing, highest peak first: on call, the one that spiked is the one to see."""
    arrays = [(index, *_arrays(one)) for index, one in enumerate(series)]
    with_data = [item for item in arrays if _peak(item[2]) is not None]
    return sorted(with_data, key=lambda item: -(_peak(item[2]) or 0.0))


def _scale(unit: str, magnitude: float) -> Scale:
    """One unit for the whole axis, picked by the largest value, as `human()` would print that value."""
    if unit == "%":
        return Scale(1.0, "%")
    if unit == "bytes":
        for suffix, power in (("EiB", 60), ("PiB", 50), ("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
            if magnitude >= 2**power:
                return Scale(float(2**power), f" {suffix}")
        return Scale(1.0, " B")
    if unit == "s":
        if magnitude >= 1 or magnitude == 0:
            return Scale(1.0, " s")
        return Scale(1e-3, " ms") if magnitude >= 1e-3 else Scale(1e-6, " us")
    rate = "/s" if unit == "/s" else ""
    for suffix, size in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if magnitude >= size:
            return Scale(size, suffix + rate)
    return Scale(1.0, rate)


def y_limits(low: float, high: float) -> tuple[float, float]:
    """Room above and below the data; a flat line sits mid-height; a metric never below zero starts at zero."""
    span = high - low
    if span <= max(abs(low), abs(high)) * 1e-9:
        pad = abs(low) * 0.2 if low else 1.0
        return low - pad, high + pad
    pad = span * 0.1
    bottom = 0.0 if low >= 0 and low - pad < 0 else low - pad
    return bottom, high + pad


def y_tick_values(bottom: float, top: float, bins: int) -> list[float]:
    from matplotlib.ticker import MaxNLocator

    values = MaxNLocator(nbins=bins, steps=[1, 2, 2.5, 5, 10]).tick_values(bottom, top)
    slack = (top - bottom) * 1e-9
    return [float(value) for value in values if bottom - slack <= value <= top + slack]


def short(value: float, unit: str) -> str:
    """`value` as the SMS answers print it ("230 ms", "1.5 MiB"), or in three figures when that would be long
    (`human` prints a 1e200 % with all its digits)."""
    text = human(value, unit)
    if len(text) <= 12:
        return text
    scale = _scale(unit, abs(value))
    return f"{value / scale.divisor:.3g}{scale.suffix}"


def tick_labels(ticks: Sequence[float], suffix: str) -> list[str]:
    """Labels with as many decimals as the step needs and no more ("0", "2.5", "5"), each with its unit."""
    if not ticks:
        return []
    step = abs(ticks[1] - ticks[0]) if len(ticks) > 1 else abs(ticks[0]) or 1.0
    texts: list[str] | None = None
    if max(abs(tick) for tick in ticks) < 1e6 and step >= 1e-4:
        for decimals in range(6):
            if all(abs(round(tick, decimals) - tick) <= step * 1e-6 for tick in ticks):
                texts = [f"{0.0 if abs(tick) < step * 1e-9 else tick:.{decimals}f}" for tick in ticks]
                break
    if texts is None:
        digits = next((d for d in range(3, 12) if len({f"{t:.{d}g}" for t in ticks}) == len(ticks)), 12)
        texts = [f"{tick:.{digits}g}" for tick in ticks]
    return [text + suffix for text in texts]


def x_limits(lines: Sequence[Line], now: float | None) -> tuple[float, float]:
    """From the first sample to the last, or on to `now` when the data stopped before it."""
    start = min(float(line.times[0]) for line in lines)
    end = max(float(line.times[-1]) for line in lines)
    if now is not None and math.isfinite(now) and now > end:
        end = now
    if end - start < 1:
        return start - 300, end + 300
    return start, end


def x_tick_values(start: float, end: float, most: int) -> tuple[list[float], list[str]]:
    """Round UTC times ("14:00", "14:30"), dates at midnight when the range spans days; no locale involved."""
    span = end - start
    step = next((s for s in _X_STEPS if span / s <= most), None)
    if step is None:
        step = 86400 * math.ceil(span / most / 86400)
    first = math.ceil(start / step) * step
    ticks = [float(first + n * step) for n in range(int((end - first) // step) + 1)]
    return ticks, [_time_label(tick, step, span) for tick in ticks]


def _time_label(tick: float, step: int, span: float) -> str:
    moment = datetime.fromtimestamp(tick, tz=UTC)
    if span > 330 * 86400:
        return f"{_MONTHS[moment.month - 1]} {moment.year}"
    if span > 86400 and moment.hour == 0 and moment.minute == 0:
        return f"{_MONTHS[moment.month - 1]} {moment.day}"
    return moment.strftime("%H:%M:%S" if step < 60 else "%H:%M")


def lines_of(series: Sequence[Series], unit: str) -> tuple[list[Line], Scale, int]:
    """The lines to draw, in axis units, the axis unit, and how many series are left out."""
    chosen = _chosen(series)
    drawn = chosen[:MAX_DRAWN]
    if not drawn:
        return [], Scale(1.0, ""), len(series)
    magnitude = max(float(np.nanmax(np.abs(values))) for _, _, values in drawn)
    scale = _scale(unit, magnitude)
    names = series_labels(series, limit=60)
    lines = [
        Line(
            index=index,
            label=names[index],
            times=times,
            values=values / scale.divisor,
            tag=short(float(values[np.isfinite(values)][-1]), unit),
        )
        for index, times, values in drawn
    ]
    return lines, scale, len(series) - len(drawn)
