"""Split a normalised text into the tokens every later stage indexes.

spaCy's English tokenizer splits "30m", "5xx" and "mobile-backend" in ways that make patterns
awkward, so the words are cut here, once, by rules written for how people text about systems,
and handed to spaCy as a ready `Doc`.
"""

from __future__ import annotations

import re
from typing import NamedTuple

_APOSTROPHE = re.compile(r"(?<=\w)'(?=\w)")
_QUOTED = re.compile(r"\"([^\"]+)\"|(?<!\w)'([^']+)'(?!\w)")
_TOKEN = re.compile(
    r"""
      (?P<path>(?<!\S)/[\w./{}:-]*)          # a route or path: /api/v1/orders
    | (?P<ref>\#\d+)                         # a list number: #2
    | (?P<word>[^\W_](?:[\w.:%-]*[^\W_%])?%?)  # words, 30m, 5xx, p99, mobile-backend, disk_full, 90%
    | (?P<punct>\S)
    """,
    re.VERBOSE,
)


class Token(NamedTuple):
    """One word or mark of the text, with where it came from (a named tuple: texts make dozens)."""

    text: str
    """As typed (apostrophes inside words removed), case kept."""
    lower: str
    start: int
    end: int
    kind: str
    """`word`, `ref` (#2), `path` (/api/x) or `punct`."""
    quoted: bool = False
    """Inside quotes: literal search words, never read as commands or entities."""

    @property
    def is_word(self) -> bool:
        return self.kind == "word"


def tokenize(text: str) -> list[Token]:
    """Cut `text` into tokens; apostrophes inside words vanish so "what's" and "whats" agree."""
    text = _APOSTROPHE.sub("", text)
    quoted_spans = [(m.start(), m.end()) for m in _QUOTED.finditer(text)] if ('"' in text or "'" in text) else []
    tokens: list[Token] = []
    for match in _TOKEN.finditer(text):
        word = match.group()
        start, end = match.span()
        quoted = bool(quoted_spans) and any(q_start < start and end < q_end for q_start, q_end in quoted_spans)
        tokens.append(Token(word, word.lower(), start, end, match.lastgroup or "punct", quoted))
    return tokens
