"""A chart as text for where MMS is off: a GSM-7 sparkline (`_.-*'`, low to high) and the figures."""

from __future__ import annotations

import math
from collections.abc import Sequence

from bot.charts.scales import NO_DATA, series_labels, short
from bot.sms.encoding import fold
from monitors.base import Series
from monitors.formatting import safe

_SPARK_LEVELS = "_.-*'"


# --- text fallback -------------------------------------------------------------------------------------------


def sparkline(points: Sequence[float], width: int = 24) -> str:
    """The values as one line of text a phone shows without switching the whole SMS to UCS-2.

    The ramp is "_.-*'": five characters of the GSM-7 *basic* table whose ink sits at five clearly different
    heights in every phone font (under the baseline, on it, mid x-height, near cap height, at the top). The
    usual "_.-~^" is not safe: "~" and "^" are in GSM-7's extension table, cost two septets each, and some
    handsets show them as "?". Block characters (U+2581...) would force the reply into UCS-2, tripling its cost.
    A gap in the data (NaN, infinity) is a space.

    More points than `width` are resampled into `width` buckets by their maximum, not their mean: a 30-second
    latency spike in a 6-hour chart is what the on-call engineer is looking for, and a mean would flatten it.
    Fewer points are not stretched: one character per point.
    """
    if width < 1:
        raise ValueError("width must be at least 1")
    buckets = _buckets(points, width)
    finite = [value for value in buckets if value is not None]
    if not finite:
        return " " * len(buckets)
    low, high = min(finite), max(finite)
    half_span = high / 2 - low / 2  # halves: (high - low) can overflow for values near the float limit
    top = len(_SPARK_LEVELS) - 1
    chars = []
    for value in buckets:
        if value is None:
            chars.append(" ")
        elif half_span <= max(abs(low), abs(high)) * 1e-12:
            chars.append(_SPARK_LEVELS[top // 2])
        else:
            chars.append(_SPARK_LEVELS[round((value / 2 - low / 2) / half_span * top)])
    return "".join(chars)


def _buckets(points: Sequence[float], width: int) -> list[float | None]:
    """The maximum finite value of each of `width` equal runs of points (None for a run with none)."""
    count = len(points)
    size = min(count, width)
    result: list[float | None] = []
    for bucket in range(size):
        run = points[bucket * count // size : (bucket + 1) * count // size]
        finite = [float(value) for value in run if math.isfinite(value)]
        result.append(max(finite) if finite else None)
    return result


def chart_text(series: Sequence[Series], *, title: str, unit: str) -> str:
    """The chart as text, for where MMS is off: the title, then a sparkline and min / max / last per series.

    One series fits in two SMS segments; several get a line each, highest peak first, at most three, then
    "+N more". Pure GSM-7, so the reply is never sent as UCS-2.
    """
    head = safe(title, 60)
    values = [_values(one) for one in series]
    peaks = [_peak_of(one) for one in values]
    ranked = sorted((i for i, peak in enumerate(peaks) if peak is not None), key=lambda i: -(peaks[i] or 0.0))
    if not ranked:
        return fold(f"{head}\n{NO_DATA}")
    if len(series) == 1:
        return fold(f"{head}\n{sparkline(values[0], 24)}\n{_figures(values[0], unit)}")
    names = series_labels(series, limit=16)
    rows = [f"{names[i]}: {sparkline(values[i], 12)} {_figures(values[i], unit)}" for i in ranked[:3]]
    if len(series) > len(rows):
        rows.append(f"+{len(series) - len(rows)} more")
    return fold("\n".join([head, *rows]))


def _values(one: Series) -> list[float]:
    return [float(value) for _, value in sorted(one.points, key=lambda point: point[0])]


def _peak_of(values: Sequence[float]) -> float | None:
    return max((value for value in values if math.isfinite(value)), default=None)


def _figures(values: Sequence[float], unit: str) -> str:
    finite = [value for value in values if math.isfinite(value)]
    return f"min {short(min(finite), unit)} max {short(max(finite), unit)} last {short(finite[-1], unit)}"
