"""Typo correction toward the bot's vocabulary, guarded so real words stay what they are.

"paymnt", "stauts", "latncy", "chekcout" should become payment, status, latency, checkout; "card",
"author", "poll" and "app" must not become cart, auth, pool and api. The guard is an English word
list: a word people actually use is never "corrected", only non-words close to our vocabulary are.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from functools import cached_property

from rapidfuzz import fuzz, process
from rapidfuzz.distance import OSA

from intents.models import Correction

IsCommonWord = Callable[[str], bool]

MIN_LENGTH = 4
"""Shorter words ("db", "mem", "cpu") are too easy to confuse; they must be typed right."""

_REPEATS = re.compile(r"(.)\1{2,}")
_CORRECTABLE = re.compile(r"^[a-z]+$")
_VOWELS = frozenset("aeiou")
MAX_DROPPED = 4
"""Most letters an abbreviation may leave out ("invntry" leaves out two, "prmths" four), and never more
than half the name."""


def _swaps(word: str) -> set[str]:
    return {word[:i] + word[i + 1] + word[i] + word[i + 2 :] for i in range(len(word) - 1)}


@functools.cache
def english_words(min_count: int = 100) -> IsCommonWord:
    """A predicate for ordinary English words, from pyspellchecker's frequency list.

    Built on demand (it reads the list from the package), never at import, and once per process: the
    answer is an immutable set's membership test, and reading the list costs ~110 ms that every further
    parser (a second app, `intents test` with a config, the test suite) would pay again. The list is read
    straight from the package's resource file when it is where pyspellchecker keeps it: building a
    `SpellChecker` to read the same counts costs 50 ms more of start-up.
    """
    counts = _word_counts()
    return frozenset(word for word, count in counts.items() if count >= min_count).__contains__


def _word_counts() -> dict[str, int]:
    import gzip
    import json
    from importlib import resources

    try:
        raw = resources.files("spellchecker").joinpath("resources/en.json.gz").read_bytes()
        counts = json.loads(gzip.decompress(raw))
        if isinstance(counts, dict) and counts:
            return counts
    except (OSError, ValueError, ModuleNotFoundError):
        pass
    from spellchecker import SpellChecker  # another layout of the package: its own loader

    return dict(SpellChecker(distance=1).word_frequency.dictionary)


def max_distance(length: int) -> int:
    """Edits allowed for a word of this length (transpositions count as one)."""
    if length < MIN_LENGTH:
        return 0
    if length <= 6:
        return 1
    if length <= 10:
        return 2
    return 3


class Corrector:
    """Maps a misspelt word to the closest vocabulary word, or leaves it alone."""

    def __init__(
        self,
        vocabulary: Iterable[str],
        is_common: IsCommonWord,
        preferred: Iterable[str] = (),
        names: Iterable[str] = (),
    ) -> None:
        self._vocabulary = sorted({w for w in vocabulary if _CORRECTABLE.match(w) and len(w) >= 3})
        self._known = frozenset(self._vocabulary)
        self._is_common = is_common
        self._preferred = frozenset(preferred)
        by_first: dict[str, list[str]] = {}
        for name in sorted({n for n in names if _CORRECTABLE.match(n) and len(n) >= 3}):
            by_first.setdefault(name[0], []).append(name)
        self._names = {first: tuple(words) for first, words in by_first.items()}
        self._name_set = frozenset(n for words in by_first.values() for n in words)
        """The words abbreviations expand to (services, metric and level words, commands), by first letter."""
        self._cache: dict[str, Correction | None] = {}

    def _plausible(self, word: str, candidate: str, distance: float) -> bool:
        """One edit is a typo; two or more must still look alike ("lantecy" -> latency, not "sigterm"
        -> sister or "logins" -> logs)."""
        if distance <= 1:
            return distance <= max_distance(len(word)) or candidate in self._preferred
        if candidate[0] != word[0] or abs(len(candidate) - len(word)) > 1:
            return False
        ratio = fuzz.ratio(word, candidate)
        within = distance <= max_distance(len(word))
        return (within and ratio >= 85) or (candidate in self._preferred and ratio >= 75)

    def _transposed(self, word: str) -> Correction | None:
        """A three-letter word with two letters swapped ("akc" -> ack, "wbe" -> web) or one letter missing
        from a four-letter word ("isk" -> disk, "uth" -> auth, "ndo" -> undo): only when exactly one word
        of the vocabulary fits, as anything looser turns short words into the wrong ones."""
        if len(word) != 3:
            return None
        found = sorted(candidate for candidate in _swaps(word) if candidate in self._known)
        if not found:
            found = sorted(self._missing_one.get(word, ()))
        return Correction(word, found[0], 1) if len(found) == 1 else None

    @cached_property
    def _missing_one(self) -> dict[str, set[str]]:
        """Four-letter words of the vocabulary by each three-letter form with one letter left out."""
        index: dict[str, set[str]] = {}
        for candidate in self._vocabulary:
            if len(candidate) == 4:
                for i in range(4):
                    index.setdefault(candidate[:i] + candidate[i + 1 :], set()).add(candidate)
        return index

    @property
    def vocabulary(self) -> frozenset[str]:
        return self._known

    def _is_name(self, word: str) -> bool:
        return word in self._name_set

    def _abbreviation(self, word: str) -> Correction | None:
        """Vowels dropped as people text ("pymnt", "chkout", "ltncy", "mmry", "stts", "invntry"): the
        word is the name with only vowels left out (and a `c` before `k`, or one of a doubled letter),
        first letter kept. A command name wins ("stts" is status, not stats), then the fewest letters left
        out; a tie is no answer."""
        if len(word) < 3:
            return None
        found: list[tuple[bool, int, str]] = []
        for name in self._names.get(word[0], ()):
            dropped = len(name) - len(word)
            if 0 < dropped <= MAX_DROPPED and dropped * 2 <= len(name) and _abbreviates(word, name):
                found.append((name not in self._preferred, dropped, name))
        if not found:
            return None
        found.sort()
        best = found[0]
        if len(found) > 1 and found[1][:2] == best[:2]:
            return None
        return Correction(word, best[2], best[1])

    def correct(self, word: str) -> Correction | None:
        """The correction for one lowercase word, or None if it should stay as typed (memoised: the same
        few hundred words make up most texts, and each costs a fuzzy search over the vocabulary)."""
        try:
            return self._cache[word]
        except KeyError:
            pass
        correction = self._correct(word)
        if len(self._cache) < 50_000:
            self._cache[word] = correction
        return correction

    def _correct(self, word: str) -> Correction | None:
        if word in self._known or not _CORRECTABLE.match(word):
            return None
        for collapsed in (_REPEATS.sub(r"\1", word), _REPEATS.sub(r"\1\1", word)):
            if collapsed != word and collapsed in self._known:
                return Correction(word, collapsed, 1)
        if self._is_common(word):
            return None
        undoubled = [word[:i] + word[i + 1 :] for i in range(1, len(word)) if word[i] == word[i - 1]]
        known = [w for w in undoubled if w in self._known]
        if len(set(known)) == 1:  # "apii", "authh", "paymment": a key held a moment too long
            return Correction(word, known[0], 1)
        abbreviation = self._abbreviation(word)
        if abbreviation is not None:
            return abbreviation
        if len(word) < MIN_LENGTH:
            return self._transposed(word)
        # A command name may be one edit further off ("getway" -> gateway): they are few and distinct.
        limit = max_distance(len(word)) + (1 if len(word) >= 5 else 0)
        candidates = process.extract(word, self._vocabulary, scorer=OSA.distance, score_cutoff=limit, limit=24)
        plausible = [
            (choice, int(distance)) for choice, distance, _ in candidates if self._plausible(word, choice, distance)
        ]
        if not plausible:
            return None
        best = min(distance for _, distance in plausible)
        closest = [choice for choice, distance in plausible if distance == best]
        # Several words equally close: prefer the first letter kept (or swapped with the second: "ohur"
        # is hour, not our), then a command name ("staus" -> status, not stats), then a name of the
        # catalog ("iring" -> firing, not bring), then a transposition (same length), then the most similar.
        closest.sort(
            key=lambda c: (
                c[0] != word[0] and c[:2] != word[1::-1],
                c not in self._preferred,
                not self._is_name(c),
                abs(len(c) - len(word)),
                -fuzz.ratio(word, c),
            )
        )
        return Correction(word, closest[0], int(best))


def _abbreviates(word: str, name: str) -> bool:
    """`word` is `name` with letters left out, each a vowel, a `c` before `k`, or one of a doubled
    letter; at least one vowel among them (leftmost alignment)."""
    position = 0
    vowel = False
    for char in word:
        found = name.find(char, position)
        if found < 0:
            return False
        for skipped in range(position, found):
            letter = name[skipped]
            if letter in _VOWELS:
                vowel = True
            elif not (
                (letter == "c" and name[skipped + 1 : skipped + 2] == "k")
                or name[skipped + 1 : skipped + 2] == letter
                or (skipped and name[skipped - 1] == letter)
            ):
                return False
        position = found + 1
    for skipped in range(position, len(name)):
        if name[skipped] not in _VOWELS:
            return False
        vowel = True
    return vowel


def confusable(word: str, name: str) -> bool:
    """One edit apart (a transposition counts as one), or `word` is `name` with its end cut ("memo")."""
    if abs(len(word) - len(name)) <= 1 and OSA.distance(word, name, score_cutoff=1) <= 1:
        return True
    return len(word) >= 4 and name.startswith(word) and len(name) - len(word) <= 2


def is_camel_case(text: str) -> bool:
    """HighCPU, DiskFull: alert names, never corrected (ALL CAPS shouting still is)."""
    if text.islower() or text.isupper():
        return False
    return any(c.isupper() for c in text[1:]) and any(c.islower() for c in text)
