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

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from bot.charts.scales import (
    NO_DATA,
    PALETTE,
    Line,
    Scale,
    lines_of,
    tick_labels,
    x_limits,
    x_tick_values,
    y_limits,
    y_tick_values,
)
from monitors.base import Series
from monitors.formatting import safe

if TYPE_CHECKING:
    from matplotlib.axes import Axes

_DPI = 100
_TEXT, _MUTED, _GRID = "#1a1a1a", "#555555", "#dddddd"
_PALETTE_COLOURS = 64


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
    lines, scale, omitted = lines_of(series, unit)
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
    canvas: _Canvas, lines: Sequence[Line], scale: Scale, top: int, now: float | None
) -> tuple[Axes, tuple[int, int, int, int]]:
    """The plot area, its limits and ticks, sized so the tick labels, the tags and the legend fit around it."""
    fonts = canvas.fonts
    finite = np.concatenate([line.values[np.isfinite(line.values)] for line in lines])
    low, high = y_limits(float(finite.min()), float(finite.max()))
    legend_rows = _legend_layout(canvas, len(lines))[1] if len(lines) > 1 else 0
    bottom = math.floor(canvas.height - fonts.tick * 1.6 - fonts.pad - legend_rows * fonts.tick * 1.5)
    y_ticks = y_tick_values(low, high, max(2, min(6, int((bottom - top) // (fonts.tick * 3)))))
    y_labels = [canvas.fit(label, fonts.tick, canvas.width * 0.3) for label in tick_labels(y_ticks, scale.suffix)]
    left = math.ceil(max([canvas.text_width(label, fonts.tick) for label in y_labels] + [0]) + fonts.pad * 1.8)
    right = canvas.width - math.ceil(max(canvas.text_width(line.tag, fonts.tag) for line in lines) + fonts.pad * 2.5)
    right = max(right, left + canvas.width // 4)  # the plot keeps a quarter of the width whatever the labels
    w, h = canvas.width, canvas.height
    axes = canvas.figure.add_axes((left / w, 1 - bottom / h, (right - left) / w, (bottom - top) / h))
    start, end = x_limits(lines, now)
    x_ticks, x_labels = x_tick_values(start, end, max(2, int((right - left) // (fonts.tick * 5))))
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


def _draw_line(axes: Axes, fonts: _Fonts, line: Line, colour: str) -> None:
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


def _draw_tags(canvas: _Canvas, axes: Axes, lines: Sequence[Line], box: tuple[int, int, int, int]) -> None:
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


def _draw_legend(canvas: _Canvas, lines: Sequence[Line], box: tuple[int, int, int, int]) -> None:
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
