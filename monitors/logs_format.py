"""Log lines as a phone shows them, the same for every log backend: newest first, each message once,
each one short and safe, and a reply that says plainly whether nothing matched or something did.

Log lines go to a phone over SMS, so before anything else URLs become "<url>" and values after
password=, token=, api_key= (and bearer tokens) become "<redacted>": an internal address or a
credential someone logged stays off the phone.

"0 errors in the last 1h" is an answer (the backend was asked and found none); a failure to ask is
never written as zero, it is a `BackendError` and `describe()` words it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable

from intents.durations import format_duration
from monitors.base import LogLine, LogQuery, LogResult
from monitors.formatting import duration, safe

LINE_CHARS = 120
"""Longest message kept; a 5,000-character stack dump is cut to a readable first line."""
SOURCE_CHARS = 24
REPLY_CHARS = 300
"""Longest reply: the lines that fit are shown, the rest counted."""
SCANNED_CHARS = 2000
"""Of a message, how much is cleaned: far more than is shown, far less than a hostile line can be."""
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
"""Terminal colour codes, common in container logs; only their ESC would be unprintable."""
_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://\S+", re.IGNORECASE)
_SECRET = re.compile(
    r"\b(password|passwd|secret|token|api[_-]?key|access[_-]?key|authorization)([\"']?\s*[=:]\s*[\"']?)"
    r"(?:bearer\s+|basic\s+)?[^\s\"',;&]+"
    r"|\b(bearer)\s+[^\s\"',;&]+",
    re.IGNORECASE,
)
NOUNS = {"error": "errors", "warn": "warnings", "info": "info lines"}


def tidy(lines: Iterable[LogLine], keep: int, width: int = LINE_CHARS) -> tuple[LogLine, ...]:
    """The `keep` newest distinct messages, newest first, safe and at most `width` long.

    Messages are compared as a phone would show them (cleaned and cut), so lines differing only in
    invisible characters or past the cut count as one; repeats are counted ("(x3)") rather than shown.
    """
    groups: dict[str, list[tuple[LogLine, str]]] = {}
    for line in sorted(lines, key=lambda line: line.timestamp, reverse=True):
        cleaned = redact(_ANSI.sub("", line.message[:SCANNED_CHARS]))
        groups.setdefault(safe(cleaned, width), []).append((line, cleaned))
    kept = []
    for group in list(groups.values())[: max(0, keep)]:
        newest, cleaned = group[0]
        repeats = f" (x{len(group)})" if len(group) > 1 else ""
        message = safe(cleaned, width - len(repeats)) + repeats
        kept.append(LogLine(newest.timestamp, message, safe(newest.source, SOURCE_CHARS)))
    return tuple(kept)


def redact(text: str) -> str:
    """The text with URLs and credential values replaced."""
    text = _URL.sub("<url>", text)
    return _SECRET.sub(lambda m: f"{m[1]}{m[2]}<redacted>" if m[1] else f"{m[3]} <redacted>", text)


def subject(query: LogQuery) -> str:
    """Who and what was searched: 'payment "timeout"' or 'all services'."""
    words = [safe(query.service, 30) if query.service else "all services"]
    if query.terms:
        words.append(safe(" ".join(f'"{term}"' for term in query.terms), 60))
    return " ".join(words)


def format_logs(result: LogResult, now: float | None = None, budget: int = REPLY_CHARS) -> str:
    """ "payment: 3 errors in the last 1h, newest first:" then one line each, as many as fit."""
    query = result.query
    noun = NOUNS.get(query.level or "", "lines")
    window = f"in the last {format_duration(query.range_s)}"
    if not result.lines:
        if query.level in NOUNS:
            return f"{subject(query)}: 0 {noun} {window}"
        return f"{subject(query)}: no matching lines {window}"
    counted = f"{result.total} {noun}" if result.total is not None else f"latest {noun}"
    head = f"{subject(query)}: {counted} {window}, newest first:"
    clock = time.time() if now is None else now
    shown = [head]
    size = len(head)
    for index, line in enumerate(result.lines):
        text = _line(line, clock, with_source=query.service is None)
        rest = len(result.lines) - index - 1
        reserve = len(f"\n(+{rest} more)") if rest else 0
        if size + 1 + len(text) + reserve > budget and len(shown) > 1:
            shown.append(f"(+{len(result.lines) - index} more)")
            break
        shown.append(text)
        size += 1 + len(text)
    return "\n".join(shown)


def _line(line: LogLine, now: float, with_source: bool) -> str:
    age = f"{duration(now - line.timestamp)} ago " if line.timestamp > 0 else ""
    source = f"{line.source}: " if with_source and line.source else ""
    return f"{age}{source}{line.message}"
