"""SMS-native text: what a reply costs on the network, how to keep it cheap, and how to page it.

A carrier bills and splits by *segment*, not by character. A message whose every character is in the GSM 03.38
7-bit alphabet goes as GSM-7 (160 septets in one segment, 153 per segment once concatenated, the 6-byte
concatenation header taking the rest); a single character outside it (one curly quote, one emoji) sends the
whole message as UCS-2 (70 UTF-16 code units, then 67 per segment). So a reply is folded to GSM-7 first, where
the meaning survives, then counted and cut with the same rules Twilio and the carriers use.

Everything here is a pure function of its arguments: no I/O, no state, no settings. The alphabet tables are
transcribed from the Unicode Consortium's GSM0338.TXT (tests/fixtures/sms/gsm7.txt; the tests check every row).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterable, Iterator
from typing import Literal

Encoding = Literal["GSM-7", "UCS-2"]

# GSM 03.38 default alphabet in code order, 0x00 to 0x7F. 0x1B is ESC (the way into the extension table), not a
# character of its own, so it is left out of the character set below.
_GSM7_BASIC_TABLE = (
    "@£$¥èéùìòç\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
_ESC = "\x1b"
_GSM7_BASIC = frozenset(_GSM7_BASIC_TABLE) - {_ESC}
# Extension table: each is sent as ESC + code, so each costs two septets.
_GSM7_EXTENDED = frozenset("\f^{}\\[~]|€")
_GSM7 = _GSM7_BASIC | _GSM7_EXTENDED

_GSM7_SINGLE, _GSM7_MULTI = 160, 153
_UCS2_SINGLE, _UCS2_MULTI = 70, 67

# Uppercase Greek letters GSM 03.38 covers by reusing the Latin letter of the same shape (the commented rows of
# GSM0338.TXT). With the ten Greek capitals the table has, this spells the whole Greek alphabet in capitals,
# which is how Greek has long been written in GSM-7 texts.
_GREEK_AS_LATIN = {
    "Α": "A",
    "Β": "B",
    "Ε": "E",
    "Ζ": "Z",
    "Η": "H",
    "Ι": "I",
    "Κ": "K",
    "Μ": "M",
    "Ν": "N",
    "Ο": "O",
    "Ρ": "P",
    "Τ": "T",
    "Υ": "Y",
    "Χ": "X",
}


def _table(groups: Iterable[tuple[str, str]]) -> dict[str, str]:
    return {char: replacement for chars, replacement in groups for char in chars}


# Characters with a GSM-7 spelling that means the same thing. Applied whatever `allow_unicode` says: keeping
# them costs the whole message its GSM-7 encoding and buys nothing. Quotes follow Twilio's Smart Encoding list.
_EQUIVALENTS = _table(
    [
        ("\r\f\v\x85\u2028\u2029", "\n"),  # line and page breaks (CR and FF are GSM-7, but one LF is all a phone needs)
        ("\t", " "),
        ("‘’‚‛′‵`´ʹʻʼʽˈˊˋ❛❜＇‹›", "'"),
        ("“”„‟″‶«»ʺˮ❝❞〝〞＂", '"'),
        ("‐‑‒–—―−⁃﹘﹣－⸺⸻", "-"),
        ("…", "..."),
        ("‥", ".."),
        ("•‣◦∙·●▪⦁", "-"),
        ("→⟶➔➜➝➞", "->"),
        ("←⟵", "<-"),
        ("↔⟷", "<->"),
        ("⇒⟹", "=>"),
        ("⇐", "<="),
        ("⇔", "<=>"),
        ("↑↗", "up"),
        ("↓↘", "down"),
        ("×", "x"),
        ("÷⁄∕", "/"),
        ("≤⩽", "<="),
        ("≥⩾", ">="),
        ("≠", "!="),
        ("≈≃", "~"),
        ("±", "+/-"),
        ("∞", "inf"),
        ("°", "deg"),
        ("µ", "u"),  # the micro sign: "350µs" is "350us"; NFKD would make it a Greek mu
        ("©", "(c)"),
        ("®", "(R)"),
        ("™", "TM"),
        ("¢", "c"),
        ("¦", "|"),
        ("ˆ", "^"),
        ("˜", "~"),
        # letters with no decomposition to a base letter
        ("Œ", "OE"),
        ("œ", "oe"),
        ("Ł", "L"),
        ("ł", "l"),
        ("Đ", "D"),
        ("đð", "d"),
        ("Ð", "D"),
        ("Þ", "TH"),
        ("þ", "th"),
        ("ı", "i"),
        ("Ç", "C"),  # GSM0338.TXT maps 0x09 to the small c-cedilla only
    ]
)

# Emoji that carry a status rather than decorate one: spelled out when emoji are off.
_EMOJI_WORDS = _table([("✓✔✅☑", "OK"), ("✗✘❌❎", "X"), ("⚠", "!")])

# Kept when emoji are allowed: they glue emoji sequences (family, profession, flag of England) together.
_ZWJ = "\u200d"


def _emoji_glue(char: str) -> bool:
    return char == _ZWJ or "\U000e0020" <= char <= "\U000e007f"


def _equivalent(char: str) -> str | None:
    """GSM-7 text with the meaning of `char` ("" when it is invisible and can go), or None when there is none."""
    if char in _GSM7 and char not in "\r\f":
        return char
    mapped = _EQUIVALENTS.get(char)
    if mapped is not None:
        return mapped
    category = unicodedata.category(char)
    if category == "Zs":
        return " "
    if category == "Nd":
        return str(unicodedata.decimal(char))
    if category in ("Cc", "Cs", "Co") or (category == "Cf" and not _emoji_glue(char)):
        return ""
    decomposed = unicodedata.normalize("NFKD", char)
    if "\u0370" <= char <= "\u03ff":
        base = "".join(c for c in decomposed if not unicodedata.combining(c)).upper()
        if all(c in _GSM7_BASIC or c in _GREEK_AS_LATIN for c in base):
            return "".join(_GREEK_AS_LATIN.get(c, c) for c in base)
        return None
    if decomposed != char:
        parts = [_equivalent(c) for c in decomposed if not unicodedata.combining(c)]
        if all(part is not None for part in parts):
            return "".join(part for part in parts if part is not None)
    return None


def _is_text(char: str) -> bool:
    """Letters, digits, punctuation, math and currency signs: text a reader must know was there."""
    category = unicodedata.category(char)
    return category[0] in "LNP" or category in ("Sm", "Sc")


def fold(text: str, allow_unicode: bool = False) -> str:
    """`text` in GSM-7 wherever a GSM-7 spelling keeps the meaning, so one stray character cannot triple the cost.

    Typographic characters become their plain forms (curly quotes, dashes, ellipsis, Unicode spaces, bullets,
    arrows, math signs, (c)/(R)/TM), letters with diacritics outside GSM-7 lose the diacritic, Greek becomes
    capitals, other-script digits become ASCII digits, CR LF becomes LF and invisible control and format
    characters go.

    What is left has no GSM-7 form. With `allow_unicode` it is kept, and the message goes as UCS-2. Without it
    (the default) the result is pure GSM-7, and what is dropped depends on what it was:
    - text (letters of other scripts, punctuation, math and currency signs) becomes "?", one "?" per run, so
      the reader sees that something was there instead of reading words run together or a changed number;
    - emoji and other pictographs, modifiers and marks are dropped: they decorate, and a "?" in their place
      would read as a question. The few that carry a status are spelled out (a check mark is "OK", a cross
      "X", a warning sign "!").
    """
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n")
    if _GSM7.issuperset(text) and "\r" not in text and "\f" not in text:
        return text  # the usual case: nothing to fold (and the loop below costs a dict lookup per character)
    out: list[str] = []
    in_unknown_run = False
    after_dropped = False  # a dropped emoji leaves its space behind: "🔥 High CPU" should not start with one
    for char in text:
        replacement = _equivalent(char)
        if replacement is None and not allow_unicode:
            replacement = _EMOJI_WORDS.get(char)
        if replacement is not None:
            if replacement == " " and after_dropped and (not out or out[-1][-1:].isspace()):
                continue
            if replacement:
                out.append(replacement)
            in_unknown_run = in_unknown_run and not replacement
            after_dropped = after_dropped and not replacement
        elif allow_unicode:
            out.append(char)
            in_unknown_run = after_dropped = False
        elif _is_text(char):
            if not in_unknown_run:
                out.append("?")
            in_unknown_run, after_dropped = True, False
        else:
            after_dropped = True
    if after_dropped and out and out[-1] == " ":
        out.pop()
    return "".join(out)


def is_gsm7(text: str) -> bool:
    """Whether the carrier can send `text` as GSM-7 (every character in the basic or extension table)."""
    return _GSM7.issuperset(text)


def encoding(text: str) -> Encoding:
    """The encoding `text` goes out in: one character outside GSM-7 makes the whole message UCS-2."""
    return "GSM-7" if is_gsm7(text) else "UCS-2"


def _septet_costs(text: str) -> list[int]:
    return [2 if char in _GSM7_EXTENDED else 1 for char in text]


def _clings(char: str) -> bool:
    """Whether `char` extends the character before it: a combining mark, an emoji modifier, joiner or tag."""
    return (
        unicodedata.category(char) in ("Mn", "Mc", "Me")
        or char == _ZWJ
        or "\ufe00" <= char <= "\ufe0f"
        or "\U0001f3fb" <= char <= "\U0001f3ff"
        or "\U000e0020" <= char <= "\U000e007f"
    )


def _regional_indicator(char: str) -> bool:
    return "\U0001f1e6" <= char <= "\U0001f1ff"


def _cluster_starts(text: str) -> Iterator[int]:
    """Where each user-perceived character (grapheme cluster) of `text` starts.

    The rules of Unicode's UAX #29 that matter in a text message: CR LF, combining marks, emoji modifiers,
    variation selectors and tags stay with what they modify, a zero-width joiner joins its neighbours into
    one emoji, and regional indicators pair into flags. Nothing follows a control character.
    """
    previous = ""
    indicators = 0  # regional indicators in a row, so the third starts a new flag
    for index, char in enumerate(text):
        if previous == "\r" and char == "\n":
            joined = True
        elif not previous or previous < " " or "\x7f" <= previous <= "\x9f":  # after a control character
            joined = False
        elif char < "\u0300" and previous != _ZWJ:  # nothing below the combining marks extends a character
            joined = False
        elif _regional_indicator(char):
            joined = indicators % 2 == 1
        else:
            joined = _clings(char) or (previous == _ZWJ and unicodedata.category(char) == "So")
        indicators = indicators + 1 if _regional_indicator(char) else 0
        if not joined:
            yield index
        previous = char


def _utf16_costs(text: str) -> list[int]:
    """UTF-16 code units of each grapheme cluster, the units Twilio keeps together when it splits a message.

    A cluster longer than a whole segment cannot be kept together; its code points are counted one by one.
    """
    costs: list[int] = []
    bounds = [*_cluster_starts(text), len(text)]
    for start, end in zip(bounds, bounds[1:], strict=False):
        code_units = [2 if ord(char) > 0xFFFF else 1 for char in text[start:end]]
        if sum(code_units) <= _UCS2_MULTI:
            costs.append(sum(code_units))
        else:
            costs.extend(code_units)
    return costs


def septets(text: str) -> int:
    """Length of GSM-7 `text` in septets, the unit the 160/153 limits are in: extension characters cost two.

    Raises ValueError for text that is not GSM-7, which has no length in septets (see `units`).
    """
    if not is_gsm7(text):
        raise ValueError("text is not GSM-7; fold() it first or count it with units()")
    return sum(_septet_costs(text))


def units(text: str) -> int:
    """Length of `text` in its own encoding's units: septets for GSM-7, UTF-16 code units for UCS-2."""
    return sum(_septet_costs(text) if is_gsm7(text) else _utf16_costs(text))


def _count(costs: list[int], single: int, multi: int) -> int:
    """Segments for characters of these costs: a character is never split across two segments.

    An ESC + code pair in GSM-7, and a surrogate pair or a whole emoji sequence in UCS-2, goes whole into the
    next segment when it does not fit in what is left of this one (Twilio's segment calculator, TwilioDevEd/
    message-segment-calculator, packs graphemes the same way).
    """
    if sum(costs) <= single:
        return 1
    segments, used = 1, 0
    for cost in costs:
        if used + cost > multi:
            segments, used = segments + 1, 0
        used += cost
    return segments


def segment_count(text: str) -> int:
    """Segments the carrier bills for `text`, counted as Twilio counts them.

    GSM-7: 1 up to 160 septets, else 153 septets a segment. UCS-2: 1 up to 70 UTF-16 code units, else 67 a
    segment. No character is split across segments, which can cost one more segment than the plain division.
    An empty text counts 1: the network sends it as one segment with no user data.
    """
    if is_gsm7(text):
        if _GSM7_EXTENDED.isdisjoint(text):  # one septet a character: the division is exact
            return 1 if len(text) <= _GSM7_SINGLE else -(-len(text) // _GSM7_MULTI)
        return _count(_septet_costs(text), _GSM7_SINGLE, _GSM7_MULTI)
    return _count(_utf16_costs(text), _UCS2_SINGLE, _UCS2_MULTI)


def _check_max_segments(max_segments: int) -> None:
    if max_segments < 1:
        raise ValueError("max_segments must be at least 1")


def _fits(text: str, max_segments: int) -> bool:
    """`segment_count(text) <= max_segments`, without counting a long text that cannot fit anyway."""
    return len(text) <= _GSM7_SINGLE * max_segments and segment_count(text) <= max_segments


def _longest_fitting(text: str, fits: Callable[[str], bool], max_segments: int) -> int:
    """The largest n for which `fits(text[:n])`; cost only grows with length, so a binary search finds it."""
    low, high = 0, min(len(text), _GSM7_SINGLE * max_segments)
    while low < high:
        middle = (low + high + 1) // 2
        if fits(text[:middle]):
            low = middle
        else:
            high = middle - 1
    return low


def _mid_word_cut(text: str, limit: int) -> int:
    """The last cut at or before `limit` between two characters a reader sees as two (at least 1 character)."""
    cut = 0
    for start in _cluster_starts(text):
        if start > limit:
            break
        cut = start
    return cut or limit


def _last_space(text: str, limit: int, earliest: int, char_test: Callable[[str], bool]) -> int | None:
    """The last index in [earliest, limit] holding whitespace that `char_test` accepts and leaving text before it."""
    first_text = len(text) - len(text.lstrip())
    for index in range(limit, max(earliest, first_text + 1) - 1, -1):
        if char_test(text[index]):
            return index
    return None


def paginate(text: str, max_segments: int = 3, more_hint: str = "\n(more: reply MORE)") -> list[str]:
    """`text` as pages of at most `max_segments` segments each, `more_hint` ending every page but the last.

    A page ends at a line break when one falls in its second half (a short first line should not make a short
    page), else between words, and mid-word only when a single word fills the page. The whitespace at a cut is
    dropped; nothing else is, and nothing moves, so the pages without their hints, rejoined with that
    whitespace, are the text. Each page is counted in the encoding it goes out in: a GSM-7 page of a text with
    an emoji elsewhere still gets GSM-7's room. Fold the text first to keep every page GSM-7.

    Raises ValueError when `max_segments` is below 1, or when `more_hint` leaves no room for any text.
    """
    _check_max_segments(max_segments)
    pages: list[str] = []
    rest = text
    while not _fits(rest, max_segments):
        limit = _longest_fitting(rest, lambda page: _fits(page + more_hint, max_segments), max_segments)
        if limit == 0:
            raise ValueError("more_hint leaves no room for text within max_segments")
        # `limit` characters fit; rest[limit] is the first that does not, so a space there is a clean cut too.
        cut = _last_space(rest, limit, limit // 2, lambda char: char == "\n")
        if cut is None:
            cut = _last_space(rest, limit, 1, str.isspace)
        if cut is None:
            cut = _mid_word_cut(rest, limit)
            page, rest = rest[:cut], rest[cut:]
        else:
            page, rest = rest[:cut].rstrip(), rest[cut:].lstrip()
        if not rest:
            return [*pages, page]
        pages.append(page + more_hint)
    return [*pages, rest]


def fit(text: str, max_segments: int = 3) -> str:
    """`text` as one message of at most `max_segments` segments, cut and ended with "..." when it is too long.

    For replies that cannot be paged. The cut falls between words when one is in the last quarter of the room,
    so the message does not end on half a word.
    """
    _check_max_segments(max_segments)
    if _fits(text, max_segments):
        return text
    ellipsis = "..."
    limit = _longest_fitting(text, lambda kept: _fits(kept + ellipsis, max_segments), max_segments)
    cut = _last_space(text, limit, limit * 3 // 4, str.isspace)
    kept = text[: _mid_word_cut(text, limit)] if cut is None else text[:cut].rstrip()
    return kept + ellipsis
