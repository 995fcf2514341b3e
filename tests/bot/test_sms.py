"""SMS text: the GSM 03.38 alphabet and the segment sizes come from the fixtures (Unicode's GSM0338.TXT and Twilio's
glossary), so the counts here are the carrier's, not our own reading of them."""

from __future__ import annotations

import math
import re
import sys
import unicodedata
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.sms.encoding import encoding, fit, fold, is_gsm7, paginate, segment_count, septets, units
from tests.examples import examples

FIXTURES = Path(__file__).parent.parent / "fixtures"
HINT = "\n(more: reply MORE)"
ROW = re.compile(r"^(#?)0x([0-9A-F]{2,4})\t0x([0-9A-F]{4})\t#\t(.+)$")


def gsm0338_rows() -> list[tuple[bool, int, str, str]]:
    """(commented out, GSM code, Unicode character, name) for every mapping row of gsm7.txt."""
    rows = []
    for line in (FIXTURES / "sms" / "gsm7.txt").read_text(encoding="utf-8").splitlines():
        match = ROW.match(line)
        if match:
            rows.append((match[1] == "#", int(match[2], 16), chr(int(match[3], 16)), match[4]))
    return rows


ROWS = gsm0338_rows()
ESC = 0x1B
BASIC = [(code, char, name) for commented, code, char, name in ROWS if not commented and code <= 0x7F and code != ESC]
EXTENDED = [(code, char, name) for commented, code, char, name in ROWS if not commented and code > 0xFF]
BY_CODE = {code: char for commented, code, char, _ in ROWS if not commented}
# Commented rows: Greek capitals GSM 03.38 draws with the Latin letter at that code, and the capital C-cedilla.
ALIASES = [(BY_CODE[code], char, name) for commented, code, char, name in ROWS if commented and char != "\x00"]
GSM7_CHARS = "".join(char for _, char, _ in BASIC + EXTENDED)


def segment_sizes() -> dict[str, tuple[int, int]]:
    """encoding -> (single segment, per concatenated segment) from segments.txt."""
    sizes = {}
    for line in (FIXTURES / "sms" / "segments.txt").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            name, single, multi, _unit = line.split("\t")
            sizes[name] = (int(single), int(multi))
    return sizes


SIZES = segment_sizes()
GSM7_SINGLE, GSM7_MULTI = SIZES["GSM-7"]
UCS2_SINGLE, UCS2_MULTI = SIZES["UCS-2"]


# --- the fixtures themselves -------------------------------------------------------------------------------


def test_the_table_has_the_whole_alphabet() -> None:
    assert len(BASIC) == 127  # 0x00-0x7F without ESC
    assert sorted(code for code, _, _ in BASIC) == [c for c in range(0x80) if c != ESC]
    assert len(EXTENDED) == 10
    assert len(set(GSM7_CHARS)) == 137


def test_segment_sizes_agree_with_twilio_limits_and_the_udh_arithmetic() -> None:
    limits = (FIXTURES / "twilio" / "limits.txt").read_text(encoding="utf-8")
    for name, (single, multi) in SIZES.items():
        assert f"{name}\tsingle_segment={single}\tper_segment_when_concatenated={multi}" in limits
    udh_row = re.search(r"^udh_bytes\t(\d+)", limits, re.MULTILINE)
    assert udh_row
    udh = int(udh_row[1])
    payload_bits = 140 * 8
    assert (GSM7_SINGLE, GSM7_MULTI) == (payload_bits // 7, (payload_bits - udh * 8) // 7)
    assert (UCS2_SINGLE, UCS2_MULTI) == (payload_bits // 16, (payload_bits - udh * 8) // 16)


# --- alphabet ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("code", "char", "name"), [pytest.param(*row, id=f"0x{row[0]:02X}") for row in BASIC])
def test_every_basic_character_is_gsm7_and_costs_one_septet(code: int, char: str, name: str) -> None:
    assert is_gsm7(char), name
    assert encoding(char) == "GSM-7"
    assert septets(char) == 1
    assert fold(char) == char or char in "\r"  # CR alone is folded to LF; it is still GSM-7


@pytest.mark.parametrize(("code", "char", "name"), [pytest.param(*row, id=f"0x{row[0]:04X}") for row in EXTENDED])
def test_every_extended_character_is_gsm7_and_costs_two_septets(code: int, char: str, name: str) -> None:
    assert is_gsm7(char), name
    assert septets(char) == 2
    assert septets("a" + char + "a") == 4
    assert fold(char) == char or char == "\f"  # form feed is folded to LF


def test_nothing_outside_the_table_is_gsm7() -> None:
    alphabet = set(GSM7_CHARS)
    outside = [cp for cp in range(sys.maxunicode + 1) if is_gsm7(chr(cp)) != (chr(cp) in alphabet)]
    assert outside == []


@pytest.mark.parametrize(
    "char",
    [
        pytest.param("\x1b", id="escape"),
        pytest.param("\u00a0", id="nbsp-the-escape-display-form"),
        pytest.param("Ç", id="capital-c-cedilla-commented-out"),
        pytest.param("`", id="grave-accent"),
        pytest.param("\t", id="tab"),
    ],
)
def test_lookalikes_of_the_table_are_not_gsm7(char: str) -> None:
    assert not is_gsm7(char)
    assert encoding(char) == "UCS-2"
    assert is_gsm7(fold(char))


@pytest.mark.parametrize(("latin", "alias", "name"), [pytest.param(*row, id=row[2]) for row in ALIASES])
def test_commented_aliases_fold_to_the_character_at_their_code(latin: str, alias: str, name: str) -> None:
    expected = "C" if alias == "Ç" else latin  # 0x09 is the small c-cedilla: the capital keeps its case instead
    assert fold(alias) == expected
    assert fold(alias.lower()) == (latin.lower() if alias == "Ç" else expected)


def test_septets_refuses_text_that_is_not_gsm7() -> None:
    with pytest.raises(ValueError, match="not GSM-7"):
        septets("it’s")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("", 0, id="empty"),
        pytest.param("a{€", 5, id="gsm7-extension-costs-two"),
        pytest.param("it’s", 4, id="ucs2-one-unit-each"),
        pytest.param("😀a", 3, id="ucs2-surrogate-pair-costs-two"),
    ],
)
def test_units(text: str, expected: int) -> None:
    assert units(text) == expected


# --- segments ----------------------------------------------------------------------------------------------

SEGMENT_CASES = [
    pytest.param("", 1, id="empty-is-one-segment"),
    pytest.param("a" * GSM7_SINGLE, 1, id="gsm7-160"),
    pytest.param("a" * (GSM7_SINGLE + 1), 2, id="gsm7-161"),
    pytest.param("a" * GSM7_MULTI * 2, 2, id="gsm7-306"),
    pytest.param("a" * (GSM7_MULTI * 2 + 1), 3, id="gsm7-307"),
    pytest.param("a" * GSM7_MULTI * 10, 10, id="gsm7-1530"),
    pytest.param("{" * (GSM7_SINGLE // 2), 1, id="gsm7-80-extended-is-160-septets"),
    pytest.param("{" * (GSM7_SINGLE // 2) + "a", 2, id="gsm7-80-extended-plus-one"),
    pytest.param("€" * 76 + "a" * 153, 2, id="gsm7-extended-filling-a-segment-to-152"),
    # 152 + 2 + 152 = 306 septets = 2 x 153, but the ESC pair cannot start in the last septet of segment one.
    pytest.param("a" * 152 + "{" + "a" * 152, 3, id="gsm7-escape-pair-not-split-at-edge"),
    pytest.param("a" * 151 + "{" + "a" * 153, 2, id="gsm7-escape-pair-ends-segment-exactly"),
    pytest.param("я" * UCS2_SINGLE, 1, id="ucs2-70"),
    pytest.param("я" * (UCS2_SINGLE + 1), 2, id="ucs2-71"),
    pytest.param("я" * UCS2_MULTI * 2, 2, id="ucs2-134"),
    pytest.param("я" * (UCS2_MULTI * 2 + 1), 3, id="ucs2-135"),
    pytest.param("a" * 69 + "’", 1, id="one-curly-quote-makes-it-ucs2-70"),
    pytest.param("a" * 70 + "’", 2, id="one-curly-quote-makes-it-ucs2-71"),
    pytest.param("a" * 159 + "😀", 3, id="one-emoji-turns-a-single-gsm7-segment-into-three"),
    pytest.param("😀" * 35, 1, id="ucs2-35-emoji-is-70-units"),
    pytest.param("😀" * 35 + "a", 2, id="ucs2-35-emoji-plus-one"),
    # 66 + 2 + 66 = 134 units = 2 x 67, but the surrogate pair cannot straddle segments one and two.
    pytest.param("я" * 66 + "😀" + "я" * 66, 3, id="ucs2-surrogate-pair-not-split-at-edge"),
    pytest.param("я" * 65 + "😀" + "я" * 67, 2, id="ucs2-surrogate-pair-ends-segment-exactly"),
    # A user-perceived character goes whole into one segment, as Twilio's segment calculator lays them out:
    # each of these is 134 units, 2 segments split by code point, 3 kept whole.
    pytest.param("я" * 65 + "👍🏽" + "я" * 65, 3, id="ucs2-skin-tone-emoji-not-split-at-edge"),
    pytest.param("я" * 64 + "👨\u200d👩\u200d👧" + "я" * 62, 3, id="ucs2-zwj-sequence-not-split-at-edge"),
    pytest.param("я" * 65 + "🇫🇷" + "я" * 65, 3, id="ucs2-flag-not-split-at-edge"),
    pytest.param("я" * 66 + "и\u0306" + "я" * 66, 3, id="ucs2-combining-mark-not-split-at-edge"),
    pytest.param("я" * 66 + "1\ufe0f" + "я" * 66, 3, id="ucs2-variation-selector-not-split-at-edge"),
    pytest.param("я" * 63 + "🇫🇷🇩🇪" + "я" * 63, 2, id="ucs2-two-flags-split-between-them"),
    pytest.param("я" * 60 + "a\u200db" + "я" * 71, 2, id="ucs2-zwj-between-letters-joins-nothing"),
]


@pytest.mark.parametrize(("text", "expected"), SEGMENT_CASES)
def test_segment_count(text: str, expected: int) -> None:
    assert segment_count(text) == expected


@pytest.mark.parametrize(
    ("name", "char"), [pytest.param("GSM-7", "a", id="gsm7"), pytest.param("UCS-2", "я", id="ucs2")]
)
@pytest.mark.parametrize("segments", range(1, 11))
def test_segment_limits_from_the_fixture(name: str, char: str, segments: int) -> None:
    single, multi = SIZES[name]
    most = single if segments == 1 else multi * segments
    assert encoding(char * most) == name
    assert segment_count(char * most) == segments
    assert segment_count(char * (most + 1)) == segments + 1
    assert segment_count(char * (most + 1)) == max(2, math.ceil((most + 1) / multi))


# --- fold --------------------------------------------------------------------------------------------------

FOLDS = [
    pytest.param("‘’‚‛′‵`´ʹʻʼʽˈˊˋ❛❜＇‹›", "'" * 20, id="single-quotes-primes-and-accents"),
    pytest.param("“”„‟″‶«»ʺˮ❝❞〝〞＂", '"' * 15, id="double-quotes-and-double-primes"),
    pytest.param("it’s “down”", 'it\'s "down"', id="curly-quotes-in-a-sentence"),
    pytest.param("‐‑‒–—―−⁃﹘﹣－⸺⸻", "-" * 13, id="hyphens-dashes-and-minus"),
    pytest.param("5–10 min — maybe", "5-10 min - maybe", id="dashes-in-a-sentence"),
    pytest.param("wait…", "wait...", id="ellipsis"),
    pytest.param("a‥b", "a..b", id="two-dot-leader"),
    pytest.param("a\u00a0b\u2002c\u2003d\u2009e\u202ff\u205fg\u3000h\u1680i", "a b c d e f g h i", id="unicode-spaces"),
    pytest.param("a\u200bb\u2060c\ufeffd\u00ade\u200ef\u202ag", "abcdefg", id="invisible-format-characters"),
    pytest.param("•a ‣b ◦c ∙d ·e ●f ▪g ⦁h", "-a -b -c -d -e -f -g -h", id="bullets"),
    pytest.param("a→b ⟶ ➔ ➜ ➝ ➞", "a->b -> -> -> -> ->", id="right-arrows"),
    pytest.param("a←b ⟵", "a<-b <-", id="left-arrows"),
    pytest.param("a↔b ⟷ ⇒ ⟹ ⇐ ⇔", "a<->b <-> => => <= <=>", id="double-arrows"),
    pytest.param("cpu↑ p99↓ ↗↘", "cpuup p99down updown", id="trend-arrows"),
    pytest.param("3×4 8÷2 1⁄2 1∕2", "3x4 8/2 1/2 1/2", id="times-and-division"),
    pytest.param("a≤b c≥d ⩽ ⩾ e≠f g≈h ≃ ±1 ∞", "a<=b c>=d <= >= e!=f g~h ~ +/-1 inf", id="comparisons"),
    pytest.param("45°C 350µs", "45degC 350us", id="degree-and-micro"),
    pytest.param("© ® ™ ℠", "(c) (R) TM SM", id="copyright-trademark"),
    pytest.param("¢ ¦ ˆ ˜", "c | ^ ~", id="other-latin1-and-spacing-symbols"),
    pytest.param(
        "Œuvre œuf Łódź łąka Đ đ ð Ð Þ þ ı", "OEuvre oeuf Lodz laka D d d D TH th i", id="letters-without-decomposition"
    ),
    pytest.param(
        "ó ô õ ā ă ą ć č ď ě ğ ı ń ř ş š ţ ů ű ž ý ÿ",
        "o o o a a a c c d e g i n r s s t u u z y y",
        id="diacritics-to-base",
    ),
    pytest.param("Á Â Ã Ê Ë Î Ï Ô Õ Û Ý Ž", "A A A E E I I O O U Y Z", id="capital-diacritics-to-base"),
    pytest.param(
        "é è ù ì ò ç Ø ø Å å Ä Ö Ñ Ü ä ö ñ ü à É ß æ Æ",
        "é è ù ì ò ç Ø ø Å å Ä Ö Ñ Ü ä ö ñ ü à É ß æ Æ",
        id="gsm7-diacritics-kept",
    ),
    pytest.param("e\u0301 a\u0300 o\u0301", "é à o", id="decomposed-accents-compose-first"),
    pytest.param("ﬁ ﬂ Ａｂｃ ① ² ½ ㎏", "fi fl Abc 1 2 1/2 kg", id="compatibility-forms"),
    pytest.param("٣٤ ०१ ３", "34 01 3", id="other-script-digits"),
    pytest.param("καλημέρα", "KAΛHMEPA", id="greek-to-capitals"),
    pytest.param("ΑΘΗΝΑ ά ΐ ς ϐ ἀ", "AΘHNA A I Σ B A", id="greek-accents-and-variants"),
    pytest.param("Ω Å", "Ω Å", id="ohm-and-angstrom-signs-are-the-letters"),
    pytest.param("a\r\nb\rc\fd\ve\x85f\u2028g\u2029h", "a\nb\nc\nd\ne\nf\ng\nh", id="line-breaks-to-lf"),
    pytest.param("a\tb", "a b", id="tab-to-space"),
    pytest.param("a\x00b\x07c\x1bd\x7fe\x9bf", "abcdef", id="control-characters-removed"),
    pytest.param("a\ue000b", "ab", id="private-use-removed"),
    pytest.param("a\ud800b", "ab", id="lone-surrogate-removed"),
    pytest.param("🔥 High CPU on api", "High CPU on api", id="emoji-removed-with-its-space"),
    pytest.param("CPU 🔥 high 🔥", "CPU high", id="emoji-removed-mid-and-end"),
    pytest.param("👨‍👩‍👧 👍🏽 🇫🇷 1️⃣", "1", id="emoji-sequences-removed-whole"),
    pytest.param("api ✅ db ❌ disk ⚠️", "api OK db X disk !", id="status-emoji-spelled-out"),
    pytest.param("✓ ✔ ☑ ✗ ✘ ❎", "OK OK OK X X X", id="check-and-cross-marks"),
    pytest.param("user 日本語 said", "user ? said", id="other-script-word-is-one-question-mark"),
    pytest.param("Привет мир", "? ?", id="cyrillic-words"),
    pytest.param("नमस्ते", "?", id="letters-with-marks-are-one-run"),
    pytest.param("cost ₹100 ‰ ∑", "cost ?100 ? ?", id="unmapped-text-symbols-marked"),
    pytest.param("? ok?", "? ok?", id="real-question-marks-untouched"),
    pytest.param("", "", id="empty"),
]


@pytest.mark.parametrize(("text", "expected"), FOLDS)
def test_fold(text: str, expected: str) -> None:
    folded = fold(text)
    assert folded == expected
    assert is_gsm7(folded)


UNICODE_FOLDS = [
    pytest.param("🔥 High CPU", "🔥 High CPU", id="emoji-kept"),
    pytest.param("👨‍👩‍👧 👍🏽 🇫🇷 🏴󠁧󠁢󠁥󠁮󠁧󠁿", "👨‍👩‍👧 👍🏽 🇫🇷 🏴󠁧󠁢󠁥󠁮󠁧󠁿", id="emoji-sequences-kept-with-joiners-and-tags"),
    pytest.param("api ✅", "api ✅", id="status-emoji-kept"),
    pytest.param("it’s “down” — 日本語", 'it\'s "down" - 日本語', id="typography-still-folded-other-scripts-kept"),
    pytest.param("Łódź a\u200bb\x00", "Lodz ab", id="letters-folded-invisibles-removed"),
]


@pytest.mark.parametrize(("text", "expected"), UNICODE_FOLDS)
def test_fold_allowing_unicode(text: str, expected: str) -> None:
    assert fold(text, allow_unicode=True) == expected


def test_fold_with_unicode_allowed_stays_gsm7_when_it_can() -> None:
    assert encoding(fold("it’s “fine” — 5×", allow_unicode=True)) == "GSM-7"
    assert encoding(fold("fine 👍", allow_unicode=True)) == "UCS-2"


# --- paginate ----------------------------------------------------------------------------------------------


def contents(pages: list[str], hint: str = HINT) -> list[str]:
    """The pages without their hints (every page but the last carries one)."""
    assert all(page.endswith(hint) for page in pages[:-1])
    return [page[: len(page) - len(hint)] for page in pages[:-1]] + pages[-1:]


def assert_paged(text: str, pages: list[str], max_segments: int, hint: str = HINT) -> None:
    """Every page fits, and the text is the pages' contents with only whitespace between them."""
    assert pages
    assert all(segment_count(page) <= max_segments for page in pages)
    parts = contents(pages, hint)
    assert all(parts) or parts == [""]
    pattern = r"\s*".join(re.escape(part) for part in parts)
    assert re.fullmatch(pattern, text, re.DOTALL), (text, parts)


def test_an_empty_text_is_one_empty_page() -> None:
    assert paginate("") == [""]


@pytest.mark.parametrize("text", ["status: all green", "a" * 459, "{" * 228 + "a", "я" * 201])
def test_a_text_that_fits_is_one_page_unchanged(text: str) -> None:
    assert segment_count(text) <= 3
    assert paginate(text) == [text]


def test_one_septet_over_three_segments_makes_two_pages() -> None:
    text = ("word " * 92)[:460]
    pages = paginate(text)
    assert len(pages) == 2
    assert_paged(text, pages, 3)


def test_pages_end_at_line_breaks() -> None:
    lines = [f"{i:02} checkout-api p99 {i * 7} ms, errors {i % 5}" for i in range(40)]
    text = "\n".join(lines)
    pages = paginate(text)
    assert len(pages) > 1
    assert_paged(text, pages, 3)
    for part in contents(pages):
        assert all(line in lines for line in part.split("\n")), part


def test_a_short_first_line_does_not_make_a_short_page() -> None:
    text = "Logs:\n" + " ".join(f"word{i}" for i in range(200))
    pages = paginate(text, max_segments=1)
    first = contents(pages)[0]
    assert first.startswith("Logs:\nword0 ")
    assert len(first) > 100
    assert_paged(text, pages, 1)


def test_pages_end_between_words() -> None:
    words = [f"w{i}x" for i in range(300)]
    text = " ".join(words)
    pages = paginate(text, max_segments=2)
    assert_paged(text, pages, 2)
    for part in contents(pages):
        assert all(word in words for word in part.split(" ")), part


def test_a_word_longer_than_a_page_is_cut_mid_word() -> None:
    text = "x" * 1000
    pages = paginate(text, max_segments=1)
    assert pages[0] == "x" * (GSM7_SINGLE - len(HINT)) + HINT
    assert "".join(contents(pages)) == text
    assert_paged(text, pages, 1)


def test_a_ucs2_text_is_paged_with_ucs2_room() -> None:
    text = " ".join(["привет"] * 60)
    pages = paginate(text, max_segments=1)
    assert all(encoding(page) == "UCS-2" and units(page) <= UCS2_SINGLE for page in pages)
    assert_paged(text, pages, 1)


def test_each_page_counts_in_its_own_encoding() -> None:
    text = " ".join(["ok"] * 200) + " 🔥"
    pages = paginate(text, max_segments=1)
    assert encoding(pages[0]) == "GSM-7"
    assert units(pages[0]) > UCS2_SINGLE  # more than a UCS-2 page could hold
    assert encoding(pages[-1]) == "UCS-2"
    assert_paged(text, pages, 1)


def test_emoji_sequences_are_not_torn_apart() -> None:
    family = "👨‍👩‍👧"
    text = family * 40
    pages = paginate(text, max_segments=1)
    assert "".join(contents(pages)) == text
    for part in contents(pages):
        assert part.startswith("👨") and part.endswith("👧")
    assert_paged(text, pages, 1)


def test_flags_are_not_torn_apart() -> None:
    text = "🇫🇷🇩🇪" * 40
    pages = paginate(text, max_segments=1)
    assert "".join(contents(pages)) == text
    assert all(len(part) % 2 == 0 for part in contents(pages))
    assert_paged(text, pages, 1)


def test_a_custom_hint() -> None:
    text = " ".join(["word"] * 100)
    pages = paginate(text, max_segments=1, more_hint=" [MORE]")
    assert pages[0].endswith(" [MORE]")
    assert_paged(text, pages, 1, hint=" [MORE]")


def test_trailing_whitespace_does_not_make_an_empty_last_page() -> None:
    text = "done" + " " * 600
    assert paginate(text) == ["done"]


def test_lone_surrogates_are_counted_not_raised_on() -> None:
    text = "a\ud800" * 300
    assert segment_count(text) == 9
    assert_paged(text, paginate(text), 3)
    assert fit(text, 1).endswith("...")


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="max_segments"):
        paginate("x", max_segments=0)
    with pytest.raises(ValueError, match="no room"):
        paginate("x" * 500, max_segments=1, more_hint="h" * GSM7_SINGLE)


# --- fit ---------------------------------------------------------------------------------------------------


def test_fit_leaves_a_fitting_text_alone() -> None:
    assert fit("a" * 459) == "a" * 459
    assert fit("") == ""


def test_fit_cuts_between_words_and_adds_an_ellipsis() -> None:
    words = [f"w{i}" for i in range(200)]
    text = " ".join(words)
    fitted = fit(text, max_segments=1)
    assert fitted.endswith("...")
    assert segment_count(fitted) == 1
    assert len(fitted) > GSM7_SINGLE - 10
    assert text.startswith(fitted[:-3])
    assert fitted[:-3].split(" ")[-1] in words


def test_fit_cuts_a_long_word_mid_word() -> None:
    assert fit("x" * 500, max_segments=1) == "x" * (GSM7_SINGLE - 3) + "..."


def test_fit_ucs2() -> None:
    fitted = fit("я" * 500, max_segments=2)
    assert fitted == "я" * (UCS2_MULTI * 2 - 3) + "..."
    assert segment_count(fitted) == 2


def test_fit_refuses_zero_segments() -> None:
    with pytest.raises(ValueError, match="max_segments"):
        fit("x", max_segments=0)


# --- properties --------------------------------------------------------------------------------------------

WORDS = ["ok", "checkout", "p99", "{json}", "€5", "it’s", "—", "🔥", "привет", "日本", "\n", "\n\n", " ", "   ", "é"]
# Hypothesis draws short texts by default; repeating a drawn piece reaches the long texts paging is for.
texts = st.one_of(
    st.text(max_size=5000),
    st.text(alphabet=GSM7_CHARS + "😀’", max_size=5000),
    st.lists(st.sampled_from(WORDS), min_size=50, max_size=100).map(lambda w: (" ".join(w) * 20)[:5000]),
    st.tuples(st.text(min_size=1, max_size=120), st.integers(min_value=1, max_value=1000)).map(
        lambda p: (p[0] * p[1])[:5000]
    ),
)
PROPERTY_SETTINGS = settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY_SETTINGS
@given(texts)
def test_fold_output_is_gsm7_and_folding_again_changes_nothing(text: str) -> None:
    folded = fold(text)
    assert is_gsm7(folded)
    assert fold(folded) == folded
    assert encoding(fold(text, allow_unicode=True)) in ("GSM-7", "UCS-2")


@PROPERTY_SETTINGS
@given(st.text(alphabet="".join(c for c in GSM7_CHARS if c not in "\r\f"), max_size=5000))
def test_fold_leaves_gsm7_text_alone(text: str) -> None:
    assert fold(text) == text


@PROPERTY_SETTINGS
@given(texts, st.integers(min_value=1, max_value=5))
def test_pages_fit_and_keep_the_content(text: str, max_segments: int) -> None:
    assert_paged(text, paginate(text, max_segments=max_segments), max_segments)


@PROPERTY_SETTINGS
@given(texts, st.integers(min_value=1, max_value=5))
def test_fit_fits_and_keeps_a_prefix(text: str, max_segments: int) -> None:
    fitted = fit(text, max_segments=max_segments)
    assert segment_count(fitted) <= max_segments
    if fitted != text:
        assert fitted.endswith("...")
        assert text.startswith(fitted[:-3])


def code_point_packing(text: str) -> int:
    """Segments when characters are laid out one code point at a time, never splitting one (an independent count)."""
    gsm = all(c in GSM7_CHARS for c in text)
    cost = [2 if c in "\f^{}\\[~]|€" else 1 for c in text] if gsm else [2 if ord(c) > 0xFFFF else 1 for c in text]
    single, multi = SIZES["GSM-7" if gsm else "UCS-2"]
    if sum(cost) <= single:
        return 1
    segments: list[list[int]] = [[]]
    for c in cost:
        if sum(segments[-1]) + c > multi:
            segments.append([])
        segments[-1].append(c)
    return len(segments)


def clusters_freely(char: str) -> bool:
    """Characters that can extend the one before them (marks, emoji joiners and modifiers, flags)."""
    return (
        unicodedata.category(char) in ("Mn", "Mc", "Me", "Cf") or ord(char) >= 0x1F000 or "\ufe00" <= char <= "\ufe0f"
    )


@PROPERTY_SETTINGS
@given(texts)
def test_segment_count_matches_a_direct_packing(text: str) -> None:
    """Without clustering characters, the count is the code-point packing; with them, never below it."""
    if any(clusters_freely(c) for c in text):
        assert segment_count(text) >= code_point_packing(text)
    else:
        assert segment_count(text) == code_point_packing(text)


@PROPERTY_SETTINGS
@given(
    st.text(alphabet=st.characters(max_codepoint=0x2FF, exclude_categories=["Cs"]), max_size=2000).map(lambda t: t * 3)
)
def test_segment_count_matches_a_direct_packing_for_unclustered_text(text: str) -> None:
    assert segment_count(text) == code_point_packing(text)
