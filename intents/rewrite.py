"""Token rewrites before typo correction: words split in two, words run together, spelt-out numbers.

Each rewrite is a rule about how people text, kept as narrow as its evidence allows, and recorded as
a `Correction` so the REPL shows it ("paymenterrors -> payment errors", "forty five -> 45"):

- dictation splits a name in two ("pay ment", "check out" after a preposition): join it back;
- a fast thumb runs a service and a metric or level together ("checkoutcpu"): split it when both
  halves are words the bot knows and the whole is no word of its own;
- a number is spelt out in parts ("forty five minutes", "one hundred twenty"): compose it, so no
  duration is read from its last word alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from intents.durations import TENS, UNITS_1_19, compose_number
from intents.fuzzy import IsCommonWord
from intents.models import Correction
from intents.tokens import Token

PREPOSITIONS = frozenset({"on", "for", "in", "at", "of", "from", "about", "to"})
_NUMBER_STARTS = frozenset({*UNITS_1_19, *TENS, "a"})
MIN_HALF = 2
"""Shortest half of a run-together word ("db" in "dbconnections")."""


class Rewriter:
    """The three token rewrites, built once per catalog."""

    def __init__(
        self, joinable: Iterable[str], halves: Iterable[str], protected: Iterable[str], is_common: IsCommonWord
    ) -> None:
        self._joinable = frozenset(joinable)
        """Words two tokens may be joined into (services, metric words, command names)."""
        self._halves = frozenset(h for h in halves if len(h) >= MIN_HALF and h.isalpha())
        """Words a run-together token may be split into (services, metric, level, system, db words)."""
        self._protected = frozenset(protected)
        """Words never split: the vocabulary itself and known alert names ("postgresdown")."""
        self._is_common = is_common
        self._longest_half = max((len(h) for h in self._halves), default=0)

    def rewrite(self, tokens: Sequence[Token]) -> tuple[tuple[Token, ...], tuple[Correction, ...]]:
        """The tokens after every rewrite, and what each rewrite changed."""
        notes: list[Correction] = []
        joined = self._join_split_words(tokens, notes)
        split = self._split_run_together(joined, notes)
        return tuple(self._compose_numbers(split, notes)), tuple(notes)

    def _join_split_words(self, tokens: Sequence[Token], notes: list[Correction]) -> list[Token]:
        """ "pay ment", "cpu on check out": dictation splits names in two; join them back.

        Only into a service, metric word or command name, and only when the second half is not a
        word of its own ("ment") or a preposition shows a name is meant ("on check out", not
        "check out the logs").
        """
        joined: list[Token] = []
        index = 0
        while index < len(tokens):
            first = tokens[index]
            second = tokens[index + 1] if index + 1 < len(tokens) else None
            if (
                second is not None
                and first.kind == second.kind == "word"
                and not (first.quoted or second.quoted)
                and second.start == first.end + 1
                and first.lower + second.lower in self._joinable
                and (not self._is_common(second.lower) or (joined and joined[-1].lower in PREPOSITIONS))
            ):
                text = first.text + second.text
                joined.append(Token(text, text.lower(), first.start, second.end, "word"))
                notes.append(Correction(f"{first.lower} {second.lower}", text.lower(), 0))
                index += 2
                continue
            joined.append(first)
            index += 1
        return joined

    def split(self, word: str) -> tuple[str, str] | None:
        """ "checkoutcpu" -> (checkout, cpu); None unless exactly one split gives two known words."""
        if (
            len(word) < 2 * MIN_HALF + 1
            or len(word) > 2 * self._longest_half
            or word in self._protected
            or not word.isalpha()
            or self._is_common(word)
        ):
            return None
        found = [
            (word[:cut], word[cut:])
            for cut in range(MIN_HALF, len(word) - MIN_HALF + 1)
            if word[:cut] in self._halves and word[cut:] in self._halves
        ]
        return found[0] if len(found) == 1 else None

    def _split_run_together(self, tokens: Sequence[Token], notes: list[Correction]) -> list[Token]:
        result: list[Token] = []
        for token in tokens:
            halves = None
            if token.kind == "word" and not token.quoted and token.text.islower():
                halves = self.split(token.lower)
            if halves is None:
                result.append(token)
                continue
            left, right = halves
            middle = token.start + len(left)
            result.append(Token(token.text[: len(left)], left, token.start, middle, "word"))
            result.append(Token(token.text[len(left) :], right, middle, token.end, "word"))
            notes.append(Correction(token.lower, f"{left} {right}", 0))
        return result

    def _compose_numbers(self, tokens: Sequence[Token], notes: list[Correction]) -> list[Token]:
        """ "forty five" -> 45, "one hundred twenty" -> 120, "twenty-five" -> 25 (as one token)."""
        result: list[Token] = []
        index = 0
        while index < len(tokens):
            token = tokens[index]
            number = None
            head = token.lower.partition("-")[0]
            if head in _NUMBER_STARTS and token.kind == "word" and not token.quoted:
                words: list[str] = []
                for following in tokens[index : index + 8]:
                    if following.kind != "word" or following.quoted:
                        break
                    words.append(following.lower)
                number = compose_number(words)
            if number is None:
                result.append(token)
                index += 1
                continue
            value, used = number
            last = tokens[index + used - 1]
            text = " ".join(t.text for t in tokens[index : index + used])
            result.append(Token(text, str(value), token.start, last.end, "word"))
            notes.append(Correction(" ".join(t.lower for t in tokens[index : index + used]), str(value), 0))
            index += used
        return result
