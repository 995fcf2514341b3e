"""Numbers as people read them on a phone: "42%", "1.2 GiB", "230 ms", "1.5k/s", and a trend word.

Replies stay in plain ASCII (GSM-7), so one reply costs as few SMS segments as possible.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

_BYTES = (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10))


def number(value: float) -> str:
    """Three significant figures at most, thousands as k/M ("1.5k", "2.3M", "0.042")."""
    if math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    magnitude = abs(value)
    for suffix, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if magnitude >= size:
            return f"{value / size:.3g}{suffix}"
    if magnitude == 0 or magnitude >= 0.01:
        return f"{value:.3g}"
    return f"{value:.2g}"


def human(value: float, unit: str = "") -> str:
    """A value in its unit: "%", "bytes", "s" (seconds), "/s" (a rate) or "" (as is)."""
    if math.isnan(value) or math.isinf(value):
        return number(value)
    if unit == "%":
        return f"{value:.1f}%" if abs(value) < 100 else f"{value:.0f}%"
    if unit == "bytes":
        for suffix, size in _BYTES:
            if abs(value) >= size:
                return f"{value / size:.1f} {suffix}"
        return f"{value:.0f} B"
    if unit == "s":
        if abs(value) < 1:
            return f"{value * 1000:.0f} ms" if abs(value) >= 0.001 else f"{value * 1e6:.0f} us"
        return f"{value:.2f} s" if abs(value) < 10 else f"{value:.0f} s"
    if unit == "/s":
        return f"{number(value)}/s"
    return number(value)


def trend(values: Sequence[float]) -> str:
    """ "rising", "falling" or "steady": the last third's average against the first third's."""
    finite = [v for v in values if math.isfinite(v)]
    if len(finite) < 3:
        return "steady"
    third = max(1, len(finite) // 3)
    first = sum(finite[:third]) / third
    last = sum(finite[-third:]) / third
    scale = max(abs(first), abs(last), 1e-9)
    change = (last - first) / scale
    if change > 0.1:
        return "rising"
    if change < -0.1:
        return "falling"
    return "steady"


def duration(seconds: float) -> str:
    """ "45s", "12m", "3h", "2d": how long ago or how long, shortly."""
    seconds = max(0, int(seconds))
    for suffix, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{suffix}"
    return f"{seconds}s"


def clip(text: str, limit: int) -> str:
    """One line of at most `limit` characters, cut on a word where possible."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 3]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit // 2 else cut) + "..."


def safe(text: str, limit: int = 40) -> str:
    """A value from a backend (a label, a log line) made fit for one SMS line: no control
    characters, no line breaks, plain ASCII where Unicode would force UCS-2, at most `limit` long."""
    cleaned = "".join(ch if ch.isprintable() else " " for ch in str(text))
    cleaned = cleaned.encode("ascii", "replace").decode("ascii")
    return clip(cleaned, limit)
