"""Everyday words that stand for a name: a phone's autocorrect ("cup usage on auth") or a one-key slip
("heath", "statue"). Typo correction never touches everyday words, so these are rules of their own,
kept narrow: short texts only, one word the rest of the text does not explain, and exactly one name
one edit (or a dropped ending) away.
"""

from __future__ import annotations

from intents.catalog import Catalog
from intents.entities import EntityRules
from intents.fuzzy import MIN_LENGTH, IsCommonWord, confusable
from intents.models import Correction
from intents.slots import Analysis
from intents.stopwords import FILLER
from intents.tokens import Token

CONTEXT_WORDS = frozenset({"usage", "space", "utilization", "util", "used", "levels", "show", "graph",
                           "chart", "plot", "check", "whats", "how", "much"})  # fmt: skip
"""Words that may stand beside an autocorrected word ("cup usage on auth") without making it a real one."""
MAX_WORDS = 4
"""Texts longer than this are prose, where "desk" or "card" mean themselves."""
SLIPPED_COMMANDS = ("health", "status", "alerts")
"""Commands an everyday word one edit away may stand for ("heath", "statue"): they take nothing and only
read, so a wrong guess costs a harmless answer and nothing is written on one."""


class Autocorrect:
    """The two rules, over what the parser already extracted."""

    def __init__(
        self, catalog: Catalog, entities: EntityRules, is_common: IsCommonWord, vocabulary: frozenset[str] | set[str]
    ) -> None:
        self.entities = entities
        self.is_common = is_common
        self.vocabulary = vocabulary
        self.metrics = {
            word: alias
            for alias, words in catalog.metrics.items()
            for word in (alias, *words)
            if word.isalpha() and len(word) >= 3 and (word == alias or (len(word) >= 4 and not is_common(word)))
        }
        self.metrics["logs"] = "logs"
        self.services = {s: s for s in catalog.services if len(s) >= 3}

    def names(self, analysis: Analysis) -> Analysis | None:
        """A metric or service name autocorrected into an everyday word: "cup usage on auth", "desk space on
        search", "cart memo usage", "card memory", "show payment loge". A short text with a service and
        no metric (or a metric and no service), one word that explains nothing else, one edit (or a
        dropped ending) away from one name of the missing kind."""
        labels = analysis.labels()
        if "METRIC" not in labels and "SERVICE" in labels and "LEVEL" not in labels:
            targets = self.metrics
        elif "SERVICE" not in labels and "METRIC" in labels:
            targets = self.services
        else:
            return None
        loose = self._loose(analysis)
        if len(loose) != 1 or len(analysis.content) > MAX_WORDS:
            return None
        index = loose[0]
        word = analysis.words[index]
        everyday = self.is_common(word) or len(word) < MIN_LENGTH  # short words are never typo-corrected
        if not (word.isalpha() and len(word) >= 3 and everyday) or word in self.vocabulary:
            return None
        found = {value for name, value in targets.items() if confusable(word, name)}
        if len(found) != 1:
            return None
        target = next(name for name, value in targets.items() if value in found and confusable(word, name))
        return self._replaced(analysis, index, target)

    def commands(self, analysis: Analysis) -> Analysis | None:
        """A one-key slip turned a command into an everyday word: "heath", "heath check", "loki heath?",
        "statue". Narrower still: no service, metric or level in the text, its one word the bot does not
        know is everyday, and exactly one of `SLIPPED_COMMANDS` is one edit from it."""
        if analysis.labels() - {"SYSTEM"} or len(analysis.content) > MAX_WORDS:
            return None
        unknown = [i for i in self._loose(analysis) if analysis.words[i] not in self.vocabulary]
        if len(unknown) != 1:
            return None
        index = unknown[0]
        word = analysis.words[index]
        if not (word.isalpha() and len(word) >= 4 and self.is_common(word)) or analysis.tokens[index].quoted:
            return None
        found = [command for command in SLIPPED_COMMANDS if word != command and confusable(word, command)]
        return self._replaced(analysis, index, found[0]) if len(found) == 1 else None

    def _loose(self, analysis: Analysis) -> list[int]:
        """Indexes of the words no entity explains, filler and context words aside."""
        covered = analysis.covered()
        return [
            i for i, (token, word) in enumerate(zip(analysis.tokens, analysis.words, strict=True))
            if token.kind == "word" and i not in covered and word not in FILLER and word not in CONTEXT_WORDS
        ]  # fmt: skip

    def _replaced(self, analysis: Analysis, index: int, target: str) -> Analysis:
        word = analysis.words[index]
        tokens = list(analysis.tokens)
        old = tokens[index]
        tokens[index] = Token(old.text, target, old.start, old.end, old.kind)
        words = [*analysis.words[:index], target, *analysis.words[index + 1 :]]
        entities = self.entities.extract(tokens, words)
        content = tuple(target if w == word else w for w in analysis.content)
        correction = Correction(word, target, 1)
        return Analysis(tuple(tokens), tuple(words), (*analysis.corrections, correction), tuple(entities), content)
