"""Turn whatever a phone sent into plain, bounded text before anything reads it.

Phones send curly quotes, fullwidth letters, zero-width joiners, emoji and the odd control
character; attackers send 5,000-character payloads and shell separators. Folding all of that here
means every later stage sees one alphabet and a bounded length.
"""

from __future__ import annotations

import re
import unicodedata

MAX_LENGTH = 1600
"""Longest text parsed (ten SMS segments); the rest is dropped."""

_RAW_LIMIT = MAX_LENGTH * 4
"""Bound the work NFKC can be made to do before the real cap applies."""

_FOLD = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201a": "'",
        "\u201b": "'",
        "\u2032": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u201f": '"',
        "\u2033": '"',
        "\u2010": "-",
        "\u2011": "-",
        "\u2012": "-",
        "\u2013": "-",
        "\u2014": "-",
        "\u2212": "-",
        "\u2026": "...",
    }
)

# Unicode categories dropped outright: format characters (zero-width, bidi overrides), surrogates,
# private use, unassigned, and combining marks left over after NFKC (zalgo text, emoji modifiers).
_DROP = frozenset({"Cf", "Cs", "Co", "Cn", "Mn", "Me"})
# Categories turned into a space so they still separate words: controls, separators, emoji.
_SPACE = frozenset({"Cc", "Zl", "Zp", "Zs", "So"})

_LINE = re.compile(r"[;\n\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")
"""Always a separator: `;` and line breaks (a text of several lines is several commands; the first runs)."""
_LEADING = " \t;\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
_WHITESPACE = re.compile(r"\s+")
_ASCII_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def normalize(text: str) -> str:
    """Fold a raw text to NFKC, one space between words, no controls, at most `MAX_LENGTH` chars.

    Case is kept: alert names and raw PromQL are case-sensitive. Anything after a command separator
    (`;`, a line break, and `&&`, `|`, `||` outside quotes and brackets) is dropped, per the contract:
    only the first command of a text runs.
    """
    text = text[:_RAW_LIMIT]
    if text.isascii():  # most texts: NFKC and the folds change nothing, only controls need a space
        text = _ASCII_CONTROL.sub(" ", first_command(text))
        return _WHITESPACE.sub(" ", text).strip()[:MAX_LENGTH].strip()
    text = first_command(unicodedata.normalize("NFKC", text).translate(_FOLD))
    kept: list[str] = []
    for char in text:
        category = unicodedata.category(char)
        if category in _DROP:
            continue
        # Non-ASCII modifier symbols are emoji skin tones and the like; "^" and "`" stay for PromQL.
        blank = category in _SPACE or (category == "Sk" and not char.isascii())
        kept.append(" " if blank else char)
    text = "".join(kept)
    return _WHITESPACE.sub(" ", text).strip()[:MAX_LENGTH].strip()


def first_command(text: str) -> str:
    """The text up to its first command separator.

    A text that starts with separators ("\nstatus") is read from its first non-empty command, so a
    leading line break does not empty the text.
    """
    parts = _LINE.split(text.lstrip(_LEADING), maxsplit=1)
    head = parts[0]
    if "|" in head or "&&" in head:
        cut = _outside_brackets(head)
        if cut is not None:
            head = head[:cut]
    return head


def _outside_brackets(text: str) -> int | None:
    """Where the first `|`, `||` or `&&` outside quotes and brackets starts, or None (one pass)."""
    depth, quote = 0, ""
    for index, char in enumerate(text):
        if quote:
            if char == quote:
                quote = ""
        elif char in '"`' or (char == "'" and not (index and text[index - 1].isalnum())):
            quote = char  # an apostrophe inside a word ("what's") opens nothing
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth = max(depth - 1, 0)
        elif depth == 0 and (char == "|" or (char == "&" and text.startswith("&&", index))):
            return index
    return None
