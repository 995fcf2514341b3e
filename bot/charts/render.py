"""Charts for `graph`: a PNG readable on a phone for MMS, and a text sparkline where MMS is off.

Everything here is a pure function of its arguments: no I/O, no settings, no module state. Matplotlib is imported
inside `render` (it costs ~0.4 s to import, which a bot that never draws should not pay), and only its
object-oriented API is used (a `Figure` on an Agg canvas), never pyplot's global figure, so renders in several
threads do not share a figure.

The picture is laid out by hand in pixels rather than by `tight_layout`: it is faster, the same data always gives
the same layout, and `Chart.plot_box` can say exactly where the data is drawn (the tests read the lines back from
the pixels). Values are drawn in one unit for the whole axis ("MiB", "ms", "k/s"), the units replies use.
"""

from __future__ import annotations

import asyncio
import functools
import io
import math
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import numpy.typing as npt

from bot.sms.encoding import fold
from monitors.base import Series
from monitors.formatting import duration, human, safe

if TYPE_CHECKING:
    from matplotlib.axes import Axes

Floats = npt.NDArray[np.float64]

PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00")
"""Line colours in drawing order: the Okabe-Ito palette, told apart by colour-blind readers, none pale on white."""
MAX_DRAWN = len(PALETTE)
"""More lines than this are a tangle on a phone: the rest are counted in a note under the title."""
NO_DATA = "no data in this range"

_DPI = 100
_TEXT, _MUTED, _GRID = "#1a1a1a", "#555555", "#dddddd"
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_X_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800)
_LIMIT = 1e200
"""Values beyond ±this (or nearer zero than its inverse) are clamped: no metric is that big, and the axis
arithmetic stays clear of float overflow and of matplotlib's "singular limits" rescue."""
_EARLIEST, _LATEST = 0.0, 32_503_680_000.0
"""1970 and 3000: samples timed outside are garbage, dropped, and the axis stays where dates can be printed."""
_PALETTE_COLOURS = 64
_SPARK_LEVELS = "_.-*'"


@dataclass(frozen=True)
class Chart:
    """A rendered chart, with where its data went (for callers that check the picture, like the tests)."""

    png: bytes
    plot_box: tuple[int, int, int, int]
    """(left, top, right, bottom) of the plot area in image pixels, origin top left, right and bottom exclusive."""
    x_limits: tuple[float, float]
    """Unix times at the plot's left and right edges."""
    y_limits: tuple[float, float]
    """Values (in the series' own unit) at the plot's bottom and top edges."""
    drawn: tuple[int, ...]
    """Indexes into the series given, of those drawn, in drawing order (highest peak first)."""
    colours: tuple[str, ...]
    """The colour of each drawn series."""
    omitted: int
    """Series given but not drawn (beyond `MAX_DRAWN`, or without one finite value)."""


class _Scale(NamedTuple):
    divisor: float
    suffix: str


@dataclass(frozen=True)
class _Line:
    index: int
    label: str
    times: Floats
    values: Floats
    """In axis units (divided by the scale), NaN where the line breaks."""
    tag: str
    """The last finite value as the SMS answer prints it ("230 ms", "1.5 MiB")."""


@dataclass(frozen=True)
class _Fonts:
    """Sizes in pixels, grown with the picture so a phone shrinking it to its screen width keeps them legible."""

    title: float
    note: float
    tick: float
    tag: float
    line: float
    pad: float

    @classmethod
    def for_size(cls, width_px: int, height_px: int) -> _Fonts:
        scale = min(width_px / 800, height_px / 480)
        return cls(
            title=max(12.0, 30 * scale),
            note=max(9.0, 19 * scale),
            tick=max(9.0, 20 * scale),
            tag=max(9.0, 20 * scale),
            line=max(1.5, 4 * scale),
            pad=max(4.0, 12 * scale),
        )


def _pt(px: float) -> float:
    """Matplotlib sizes text and lines in points; the layout here is in pixels."""
    return px * 72 / _DPI


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


def _scale(unit: str, magnitude: float) -> _Scale:
    """One unit for the whole axis, picked by the largest value, as `human()` would print that value."""
    if unit == "%":
        return _Scale(1.0, "%")
    if unit == "bytes":
        for suffix, power in (("EiB", 60), ("PiB", 50), ("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
            if magnitude >= 2**power:
                return _Scale(float(2**power), f" {suffix}")
        return _Scale(1.0, " B")
    if unit == "s":
        if magnitude >= 1 or magnitude == 0:
            return _Scale(1.0, " s")
        return _Scale(1e-3, " ms") if magnitude >= 1e-3 else _Scale(1e-6, " us")
    rate = "/s" if unit == "/s" else ""
    for suffix, size in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if magnitude >= size:
            return _Scale(size, suffix + rate)
    return _Scale(1.0, rate)


def _y_limits(low: float, high: float) -> tuple[float, float]:
    """Room above and below the data; a flat line sits mid-height; a metric never below zero starts at zero."""
    span = high - low
    if span <= max(abs(low), abs(high)) * 1e-9:
        pad = abs(low) * 0.2 if low else 1.0
        return low - pad, high + pad
    pad = span * 0.1
    bottom = 0.0 if low >= 0 and low - pad < 0 else low - pad
    return bottom, high + pad


def _y_ticks(bottom: float, top: float, bins: int) -> list[float]:
    from matplotlib.ticker import MaxNLocator

    values = MaxNLocator(nbins=bins, steps=[1, 2, 2.5, 5, 10]).tick_values(bottom, top)
    slack = (top - bottom) * 1e-9
    return [float(value) for value in values if bottom - slack <= value <= top + slack]


def _short(value: float, unit: str) -> str:
    """`value` as the SMS answers print it ("230 ms", "1.5 MiB"), or in three figures when that would be long
    (`human` prints a 1e200 % with all its digits)."""
    text = human(value, unit)
    if len(text) <= 12:
        return text
    scale = _scale(unit, abs(value))
    return f"{value / scale.divisor:.3g}{scale.suffix}"


def _tick_labels(ticks: Sequence[float], suffix: str) -> list[str]:
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


def _x_limits(lines: Sequence[_Line], now: float | None) -> tuple[float, float]:
    """From the first sample to the last, or on to `now` when the data stopped before it."""
    start = min(float(line.times[0]) for line in lines)
    end = max(float(line.times[-1]) for line in lines)
    if now is not None and math.isfinite(now) and now > end:
        end = now
    if end - start < 1:
        return start - 300, end + 300
    return start, end


def _x_ticks(start: float, end: float, most: int) -> tuple[list[float], list[str]]:
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


def _lines(series: Sequence[Series], unit: str) -> tuple[list[_Line], _Scale, int]:
    """The lines to draw, in axis units, the axis unit, and how many series are left out."""
    chosen = _chosen(series)
    drawn = chosen[:MAX_DRAWN]
    if not drawn:
        return [], _Scale(1.0, ""), len(series)
    magnitude = max(float(np.nanmax(np.abs(values))) for _, _, values in drawn)
    scale = _scale(unit, magnitude)
    names = series_labels(series, limit=60)
    lines = [
        _Line(
            index=index,
            label=names[index],
            times=times,
            values=values / scale.divisor,
            tag=_short(float(values[np.isfinite(values)][-1]), unit),
        )
        for index, times, values in drawn
    ]
    return lines, scale, len(series) - len(drawn)


class _Canvas:
    """One figure on an Agg canvas, addressed in pixels from the top left, with the text sizes for its size."""

    def __init__(self, width_px: int, height_px: int) -> None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        self.width, self.height = width_px, height_px
        self.fonts = _Fonts.for_size(width_px, height_px)
        self.figure = Figure(figsize=(width_px / _DPI, height_px / _DPI), dpi=_DPI, facecolor="white")
        self.agg = FigureCanvasAgg(self.figure)
        self.renderer = self.agg.get_renderer()  # type: ignore[no-untyped-call]

    def text(self, x_px: float, y_px: float, text: str, size_px: float, **style: Any) -> None:
        """Text at a pixel position, never read as matplotlib's $math$ markup (labels come from backends)."""
        self.figure.text(
            x_px / self.width, 1 - y_px / self.height, text, fontsize=_pt(size_px), parse_math=False, **style
        )

    def text_width(self, text: str, size_px: float, bold: bool = False) -> float:
        from matplotlib.font_manager import FontProperties

        font = FontProperties(size=_pt(size_px), weight="bold" if bold else "normal")
        width, _, _ = self.renderer.get_text_width_height_descent(text, font, ismath=False)
        return float(width)

    def fit(self, text: str, size_px: float, room: float, bold: bool = False) -> str:
        """`text` cut (ending "...") to what fits in `room` pixels, found by bisection: a 10,000-character label
        must neither run off the picture nor cost a measurement per character."""
        text = safe(text, 200)
        if self.text_width(text, size_px, bold) <= room:
            return text
        low, high = 0, len(text)
        while low < high:
            middle = (low + high + 1) // 2
            if self.text_width(text[:middle] + "...", size_px, bold) <= room:
                low = middle
            else:
                high = middle - 1
        return text[:low].rstrip() + "..."

    def png(self) -> bytes:
        """The picture as a palette PNG: antialiased lines on white need few colours, and 64 keep the edges
        smooth at a third of the bytes of a true-colour PNG (carriers cap an MMS at a few hundred KiB).

        Octree quantisation and zlib level 6 cost ~6 ms together; median cut and `optimize=True` cost ~40 ms more
        to save ~3 KiB on a 20 KiB chart (see bench/graph.py), so speed wins."""
        from PIL import Image

        self.agg.draw()  # type: ignore[no-untyped-call]
        rgba = np.asarray(self.agg.buffer_rgba())  # type: ignore[no-untyped-call]
        image = Image.fromarray(rgba[:, :, :3])
        if image.size != (self.width, self.height):  # matplotlib rounds the figure's size; make it exact
            image = image.crop((0, 0, self.width, self.height))
        image = image.quantize(_PALETTE_COLOURS, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
        out = io.BytesIO()
        image.save(out, format="PNG", compress_level=6)
        return out.getvalue()


def render(
    series: Sequence[Series], *, title: str, unit: str, width_px: int, height_px: int, now: float | None = None
) -> Chart:
    """The chart as a PNG of exactly `width_px` x `height_px`, with where its data went.

    Up to `MAX_DRAWN` series are drawn, highest peak first, with a legend only when there are several. NaN and
    infinite values and missing stretches are gaps. Raises ValueError only for a size outside 50..5000 pixels.
    """
    if not (50 <= width_px <= 5000 and 50 <= height_px <= 5000):
        raise ValueError("chart size must be 50..5000 pixels each way")
    canvas = _Canvas(width_px, height_px)
    lines, scale, omitted = _lines(series, unit)
    top = _draw_title(canvas, title, len(lines), len(series) if lines else 0)
    if not lines:
        canvas.text(
            width_px / 2, (top + height_px) / 2, NO_DATA, canvas.fonts.title, color=_MUTED, ha="center", va="center"
        )
        box = (0, top, width_px, height_px)
        return Chart(canvas.png(), box, (0.0, 0.0), (0.0, 0.0), (), (), omitted)
    axes, box = _draw_axes(canvas, lines, scale, top, now)
    for line, colour in zip(lines, PALETTE, strict=False):
        _draw_line(axes, canvas.fonts, line, colour)
    _draw_tags(canvas, axes, lines, box)
    if len(lines) > 1:
        _draw_legend(canvas, lines, box)
    x_low, x_high = axes.get_xlim()
    y_low, y_high = axes.get_ylim()
    return Chart(
        png=canvas.png(),
        plot_box=box,
        x_limits=(float(x_low), float(x_high)),
        y_limits=(float(y_low) * scale.divisor, float(y_high) * scale.divisor),
        drawn=tuple(line.index for line in lines),
        colours=PALETTE[: len(lines)],
        omitted=omitted,
    )


def render_png(
    series: Sequence[Series], *, title: str, unit: str, width_px: int, height_px: int, now: float | None = None
) -> bytes:
    """The chart `graph` sends by MMS, as PNG bytes (see `render`)."""
    return render(series, title=title, unit=unit, width_px=width_px, height_px=height_px, now=now).png


def _draw_title(canvas: _Canvas, title: str, shown: int, total: int) -> int:
    """The title, and a note when series are left out; returns where the space below them starts (pixels)."""
    fonts = canvas.fonts
    room = canvas.width - 2 * fonts.pad
    canvas.text(
        fonts.pad,
        fonts.pad,
        canvas.fit(title, fonts.title, room, bold=True),
        fonts.title,
        color=_TEXT,
        weight="bold",
        va="top",
    )
    bottom = fonts.pad + fonts.title * 1.3
    if shown < total:
        note = canvas.fit(f"{shown} of {total} series shown (highest peaks)", fonts.note, room)
        canvas.text(fonts.pad, bottom, note, fonts.note, color=_MUTED, va="top")
        bottom += fonts.note * 1.4
    return math.ceil(bottom + fonts.pad)


def _legend_layout(canvas: _Canvas, count: int) -> tuple[int, int]:
    """(columns, rows) of the legend: as many columns as leave each label about a dozen characters."""
    columns = max(1, min(count, int(canvas.width // (canvas.fonts.tick * 10))))
    return columns, -(-count // columns)


def _draw_axes(
    canvas: _Canvas, lines: Sequence[_Line], scale: _Scale, top: int, now: float | None
) -> tuple[Axes, tuple[int, int, int, int]]:
    """The plot area, its limits and ticks, sized so the tick labels, the tags and the legend fit around it."""
    fonts = canvas.fonts
    finite = np.concatenate([line.values[np.isfinite(line.values)] for line in lines])
    low, high = _y_limits(float(finite.min()), float(finite.max()))
    legend_rows = _legend_layout(canvas, len(lines))[1] if len(lines) > 1 else 0
    bottom = math.floor(canvas.height - fonts.tick * 1.6 - fonts.pad - legend_rows * fonts.tick * 1.5)
    y_ticks = _y_ticks(low, high, max(2, min(6, int((bottom - top) // (fonts.tick * 3)))))
    y_labels = [canvas.fit(label, fonts.tick, canvas.width * 0.3) for label in _tick_labels(y_ticks, scale.suffix)]
    left = math.ceil(max([canvas.text_width(label, fonts.tick) for label in y_labels] + [0]) + fonts.pad * 1.8)
    right = canvas.width - math.ceil(max(canvas.text_width(line.tag, fonts.tag) for line in lines) + fonts.pad * 2.5)
    right = max(right, left + canvas.width // 4)  # the plot keeps a quarter of the width whatever the labels
    w, h = canvas.width, canvas.height
    axes = canvas.figure.add_axes((left / w, 1 - bottom / h, (right - left) / w, (bottom - top) / h))
    start, end = _x_limits(lines, now)
    x_ticks, x_labels = _x_ticks(start, end, max(2, int((right - left) // (fonts.tick * 5))))
    x_ticks, x_labels = _clear_of_edges(canvas, x_ticks, x_labels, (start, end), (left, right))
    axes.set_xlim(start, end)
    axes.set_ylim(low, high)
    axes.set_xticks(x_ticks, x_labels)
    axes.set_yticks(y_ticks, y_labels)
    axes.tick_params(labelsize=_pt(fonts.tick), colors=_MUTED, length=0, pad=_pt(fonts.pad * 0.6))
    axes.grid(True, color=_GRID, linewidth=_pt(1))
    axes.set_axisbelow(True)
    for name, spine in axes.spines.items():
        spine.set_visible(name == "bottom")
        spine.set_color(_GRID)
    canvas.text(w - fonts.pad, bottom + fonts.pad * 0.6, "UTC", fonts.tick, color=_MUTED, ha="right", va="top")
    return axes, (left, top, right, bottom)


def _clear_of_edges(
    canvas: _Canvas, ticks: list[float], labels: list[str], limits: tuple[float, float], span_px: tuple[int, int]
) -> tuple[list[float], list[str]]:
    """The time ticks whose labels stay inside the picture and clear of the "UTC" at the right end of their row."""
    fonts = canvas.fonts
    last = canvas.width - fonts.pad * 2 - canvas.text_width("UTC", fonts.tick)
    kept_ticks, kept_labels = [], []
    for tick, label in zip(ticks, labels, strict=True):
        x = span_px[0] + (tick - limits[0]) / (limits[1] - limits[0]) * (span_px[1] - span_px[0])
        half = canvas.text_width(label, fonts.tick) / 2
        if x - half > fonts.pad / 2 and x + half < last:
            kept_ticks.append(tick)
            kept_labels.append(label)
    return kept_ticks, kept_labels


def _draw_line(axes: Axes, fonts: _Fonts, line: _Line, colour: str) -> None:
    """A thick line; a sample with gaps on both sides is a dot, or it would not show at all."""
    axes.plot(
        line.times,
        line.values,
        color=colour,
        linewidth=_pt(fonts.line),
        solid_joinstyle="round",
        solid_capstyle="round",
    )
    finite = np.isfinite(line.values)
    before = np.concatenate(([False], finite[:-1]))
    after = np.concatenate((finite[1:], [False]))
    alone = finite & ~before & ~after
    if alone.any():
        axes.plot(
            line.times[alone], line.values[alone], "o", color=colour, markersize=_pt(fonts.line * 2.5), clip_on=False
        )


def _draw_tags(canvas: _Canvas, axes: Axes, lines: Sequence[_Line], box: tuple[int, int, int, int]) -> None:
    """The last value of each line, in the line's colour, right of the plot at the height the line ends at."""
    fonts = canvas.fonts
    half = fonts.tag * 0.85  # half a tag's height: its box stays within the plot's height, clear of the time row
    spots: list[tuple[float, str, str]] = []
    for line, colour in zip(lines, PALETTE, strict=False):
        last = np.flatnonzero(np.isfinite(line.values))[-1]
        t, v = float(line.times[last]), float(line.values[last])
        axes.plot([t], [v], "o", color=colour, markersize=_pt(fonts.line * 2.2), clip_on=False)
        y = canvas.height - float(axes.transData.transform((t, v))[1])
        spots.append((min(max(y, box[1] + half), box[3] - half), line.tag, colour))
    for y, tag, colour in _spread(spots, half * 2.2, box[3] - half):
        canvas.text(
            box[2] + fonts.pad,
            y,
            tag,
            fonts.tag,
            color=_ink(colour),
            va="center",
            weight="bold",
            bbox={"boxstyle": "round,pad=0.25", "facecolor": colour, "edgecolor": "none"},
        )


def _ink(background: str) -> str:
    """White on the dark colours, near-black on the light ones (orange, pink), so a tag is always legible."""
    red, green, blue = (int(background[i : i + 2], 16) for i in (1, 3, 5))
    return _TEXT if 0.299 * red + 0.587 * green + 0.114 * blue > 150 else "white"


def _spread(spots: list[tuple[float, str, str]], gap: float, lowest: float) -> list[tuple[float, str, str]]:
    """Tags moved apart vertically so none hides another: down from the top, then back up from `lowest`."""
    spots = sorted(spots)
    for n in range(1, len(spots)):
        spots[n] = (max(spots[n][0], spots[n - 1][0] + gap), *spots[n][1:])
    if spots and spots[-1][0] > lowest:
        spots[-1] = (lowest, *spots[-1][1:])
        for n in range(len(spots) - 2, -1, -1):
            spots[n] = (min(spots[n][0], spots[n + 1][0] - gap), *spots[n][1:])
    return spots


def _draw_legend(canvas: _Canvas, lines: Sequence[_Line], box: tuple[int, int, int, int]) -> None:
    """A legend under the time axis, in columns, so it never covers a line."""
    from matplotlib.lines import Line2D

    fonts, w, h = canvas.fonts, canvas.width, canvas.height
    columns, _ = _legend_layout(canvas, len(lines))
    column_width = (w - 2 * fonts.pad) / columns
    swatch = fonts.tick * 1.4
    for n, (line, colour) in enumerate(zip(lines, PALETTE, strict=False)):
        x = fonts.pad + (n % columns) * column_width
        y = box[3] + fonts.tick * 1.6 + fonts.pad + (n // columns + 0.5) * fonts.tick * 1.5
        stroke = Line2D(
            [x / w, (x + swatch) / w],
            [1 - y / h] * 2,
            color=colour,
            linewidth=_pt(fonts.line),
            transform=canvas.figure.transFigure,
        )
        canvas.figure.add_artist(stroke)
        label = canvas.fit(line.label, fonts.tick, column_width - swatch - fonts.pad * 1.5)
        canvas.text(x + swatch + fonts.pad * 0.5, y, label, fonts.tick, color=_TEXT, va="center")


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
    return f"min {_short(min(finite), unit)} max {_short(max(finite), unit)} last {_short(finite[-1], unit)}"


class ChartRenderer:
    """Renders off the event loop, one chart at a time.

    A chart keeps a core busy for ~30 ms (and ~200 ms the first time, importing matplotlib), which would
    stall every other text on the loop. One worker thread, not many: matplotlib does not promise thread
    safety (its font and text caches are shared), and charts queue for a few tens of milliseconds at worst.
    """

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="charts")

    async def png(
        self, series: Sequence[Series], *, title: str, unit: str, width_px: int, height_px: int, now: float | None
    ) -> bytes:
        job = functools.partial(
            render_png, series, title=title, unit=unit, width_px=width_px, height_px=height_px, now=now
        )
        return await asyncio.get_running_loop().run_in_executor(self._executor, job)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
