"""What may reach a table (and, through `operator history` or the dashboard, a terminal or a page).

Every text field is cleaned here before it is stored: terminal escapes and control characters go,
line breaks become spaces, E.164 numbers inside texts are masked, and each field is capped.
"""

from __future__ import annotations

import re

from bot.db.schema import WORD_MAX
from bot.sms.privacy import mask_number

# --- cleaning: what may reach the table (and, through `operator history`, a terminal) ------------

_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")
"""Terminal escape sequences (CSI colours and cursor moves, OSC titles and links), removed whole."""
_LINE_BREAKS = re.compile(r"\s*[\t\n\r\v\f\x85\u2028\u2029]+\s*")
_UNPRINTABLE = re.compile(
    "[\x00-\x1f\x7f-\x9f"  # C0 and C1 controls: NUL (PostgreSQL refuses it), ESC (terminal escapes) …
    "\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff"  # zero-width and bidi controls
    "\ud800-\udfff]"  # lone surrogates: neither database can encode them
)
_E164_IN_TEXT = re.compile(r"\+\d[\d\s().-]{5,}\d")
"""Phone numbers as people write them (`+1 (555) 123-0001`). Only `+`-prefixed runs: plain digit runs
in replies are figures, times and dates, which the audit must keep."""
_WORD_CHARS = re.compile(r"[^a-z0-9_.-]+")


def clean_text(text: str, limit: int) -> str:
    """One line of printable text: breaks become spaces, controls go, numbers are masked, then capped."""
    text = _UNPRINTABLE.sub("", _LINE_BREAKS.sub(" ", _ANSI.sub("", text)))
    text = _E164_IN_TEXT.sub(lambda m: mask_number(re.sub(r"[\s().-]", "", m.group())), text)
    return text.strip()[:limit]


def optional_text(text: str | None, limit: int) -> str | None:
    if text is None:
        return None
    return clean_text(text, limit) or None


def vocabulary_word(value: str | None, limit: int = WORD_MAX) -> str | None:
    """A vocabulary word (`rate_limited`), lower case; anything else in it becomes `_`; `-` means none."""
    if value is None:
        return None
    return _WORD_CHARS.sub("_", clean_text(str(value), limit * 2).lower()).strip("_.-")[:limit] or None
