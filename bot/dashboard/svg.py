"""The dashboard's small charts as inline SVG, drawn on the server: no script, no image request.

Colours come from classes styled by dashboard.css (the page's Content-Security-Policy forbids
inline styles), and every text that reaches the SVG (intent names, monitor names, times) is
escaped here with `xml.sax.saxutils`, because the result is marked safe for the template: this
module is the only place the dashboard builds markup by hand. Each bar carries a `<title>`, so
hovering shows the exact figure without any JavaScript.
"""

from __future__ import annotations

from collections.abc import Sequence
from xml.sax.saxutils import escape, quoteattr

from markupsafe import Markup

from bot.dashboard.queries import HourCount, Slot


def _svg(width: int, height: int, label: str, body: list[str]) -> Markup:
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label={quoteattr(label)}>'
        f"<title>{escape(label)}</title>"
    )
    return Markup(head + "".join(body) + "</svg>")  # noqa: S704 - every text above is escaped


def bar_chart(items: Sequence[tuple[str, int]], label: str, width: int = 420) -> Markup:
    """Horizontal bars, one per (name, count), longest first as given."""
    row, name_w, count_w = 20, 120, 48
    height = max(row, row * len(items))
    largest = max((count for _, count in items), default=0) or 1
    bars_w = width - name_w - count_w
    body: list[str] = []
    for i, (name, count) in enumerate(items):
        y = i * row
        length = max(1.0, bars_w * count / largest) if count else 0.0
        shown = name if len(name) <= 16 else name[:15] + "…"
        body.append(
            f'<text class="label" x="{name_w - 6}" y="{y + 14}" text-anchor="end">{escape(shown)}</text>'
            f'<rect class="bar" x="{name_w}" y="{y + 3}" width="{length:.1f}" height="{row - 6}">'
            f"<title>{escape(name)}: {count}</title></rect>"
            f'<text class="value" x="{name_w + length + 4:.1f}" y="{y + 14}">{count}</text>'
        )
    if not items:
        body.append(f'<text class="empty" x="{width / 2:.0f}" y="14" text-anchor="middle">no texts</text>')
    return _svg(width, height, label, body)


def hourly_chart(hours: Sequence[HourCount], label: str, width: int = 720, height: int = 140) -> Markup:
    """Texts per hour, received and sent side by side, oldest hour on the left."""
    top, bottom, left = 14, 20, 34
    plot_h = height - top - bottom
    slot_w = (width - left) / max(1, len(hours))
    largest = max((max(h.inbound, h.outbound) for h in hours), default=0) or 1
    body = [
        f'<line class="axis" x1="{left}" y1="{top + plot_h}" x2="{width}" y2="{top + plot_h}"/>',
        f'<text class="tick" x="{left - 4}" y="{top + 4}" text-anchor="end">{largest}</text>',
        f'<text class="tick" x="{left - 4}" y="{top + plot_h}" text-anchor="end">0</text>',
    ]
    bar_w = max(1.0, slot_w / 2 - 1)
    for i, hour in enumerate(hours):
        x = left + i * slot_w
        when = escape(hour.start.strftime("%Y-%m-%d %H:%M UTC"))
        for offset, (kind, count) in enumerate((("in", hour.inbound), ("out", hour.outbound))):
            if not count:
                continue
            bar_h = max(1.0, plot_h * count / largest)
            body.append(
                f'<rect class="bar {kind}" x="{x + offset * bar_w + 0.5:.1f}" y="{top + plot_h - bar_h:.1f}" '
                f'width="{bar_w:.1f}" height="{bar_h:.1f}"><title>{when}: {count} {kind}</title></rect>'
            )
    if hours:
        first = escape(hours[0].start.strftime("%m-%d %H:%M"))
        body.append(f'<text class="tick" x="{left}" y="{height - 4}">{first}</text>')
        body.append(f'<text class="tick" x="{width}" y="{height - 4}" text-anchor="end">now</text>')
    return _svg(width, height, label, body)


def health_strip(slots: Sequence[Slot], label: str, slot_s: int, width: int = 480, height: int = 16) -> Markup:
    """One cell per slot, oldest on the left: up, down (any sample down) or no sample."""
    cell_w = width / max(1, len(slots))
    minutes = f"{slot_s / 60:g} min" if slot_s < 7200 else f"{slot_s / 3600:g} h"
    body = []
    for i, state in enumerate(slots):
        age = (len(slots) - i) * slot_s
        ago = f"{age / 3600:.1f} h ago" if age >= 3600 else f"{age // 60} min ago"
        body.append(
            f'<rect class="cell {state}" x="{i * cell_w:.2f}" y="0" width="{max(cell_w - 0.5, 0.5):.2f}" '
            f'height="{height}"><title>{escape(state)} ({minutes} from {ago})</title></rect>'
        )
    return _svg(width, height, label, body)
