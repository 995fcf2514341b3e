"""The intent pipeline: normalise, rewrite, strict syntax, typo correction, entities, scoring, follow-ups.

`Parser.parse(text, context)` is the one call the bot, the batch tool and the REPL make. It is
pure (same text and context, same result) and never raises for any text; `Parser.explain` returns
the whole trace for tuning. A write command (silence, ack, take, escalate) whose alert, duration or
end time the text gives two ways, or in a way the rules cannot read, is never guessed: the parse is
`unknown` with a suggestion, and the trace says why.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from intents.autocorrect import Autocorrect
from intents.catalog import ALERT_STATE_WORDS, DB_METRIC_WORDS, LEVEL_WORDS, Catalog
from intents.durations import NUMBER_WORDS, TENS, UNIT_SECONDS, UNITS_1_19
from intents.entities import UNTIL_WORDS, EntityRules
from intents.followup import SLOTS_OF, carries_service, merge, query_slots, same_subject
from intents.fuzzy import Corrector, IsCommonWord, confusable, english_words, is_camel_case
from intents.grammar import OUT_OF_SCOPE, PSEUDO_INTENTS, SMALLTALK, Grammar, Score
from intents.models import Context, Correction, Intent, Parse, SlotValue, Source, Trace, terms_of
from intents.normalize import normalize
from intents.render import render
from intents.replies import CODE, GLUED_CODE
from intents.replies import answer as reply_to
from intents.rewrite import Rewriter
from intents.slots import UNSURE, Analysis, fill, refers_back
from intents.strict import parse_strict
from intents.tokens import Token, tokenize
from intents.verdicts import confidence_of, own, unknown

Slots = dict[str, SlotValue]

_ACCEPTS: dict[Intent, frozenset[str]] = {
    Intent.METRICS: frozenset({"SERVICE", "DURATION", "METRIC"}),
    Intent.GRAPH: frozenset({"SERVICE", "DURATION", "METRIC"}),
    Intent.LOGS: frozenset({"SERVICE", "DURATION", "LEVEL"}),
    Intent.HEALTH: frozenset({"SYSTEM"}),
    Intent.DB: frozenset({"DBMETRIC"}),
    Intent.GATEWAY: frozenset({"SERVICE"}),
    Intent.ALERTS: frozenset({"STATE"}),
    Intent.SILENCE: frozenset({"ALERTREF", "ALERTNAME", "DURATION"}),
    Intent.ACK: frozenset({"ALERTREF", "ALERTNAME"}),
}
"""Entities that, alone in a text, continue the previous command ("what about checkout?")."""
_SLOT_LABELS = frozenset(label for labels in _ACCEPTS.values() for label in labels)
WRITES = frozenset({Intent.SILENCE, Intent.ACK, Intent.TAKE, Intent.ESCALATE})
"""Commands that change something: never run on a guess."""
_REFERENCE_NEXT = frozenset({"it", "this", "that", "them", "to", "#"})
"""After "bump" at the start of a text, words that make it an escalation ("bump it"), not an action."""
_RANGE_NAMES = frozenset({"last", "past", "previous"})
_BEFORE_UNIT = frozenset({"last", "past", "previous", "prior", "next", "lst", "pst", "a", "an", "few", "couple",
                          "several", *NUMBER_WORDS})  # fmt: skip
_COUNT = re.compile(r"^\d+(?:\.\d+)?$")
_UNIT_WORDS = tuple(u for u in UNIT_SECONDS if len(u) >= 3)
_NEVER_A_CONTINUATION = frozenset({Intent.ONCALL, Intent.TAKE, Intent.ESCALATE})
"""On-call commands are asked outright: "take payments for six hours" after a payments query is a take."""
_MOVING_VERBS = frozenset({"bump", "move", "kick", "push", "send", "pass"})


class Parser:
    """Free text or strict syntax in, one canonical command out."""

    def __init__(
        self,
        catalog: Catalog | None = None,
        grammar: Grammar | None = None,
        is_common_word: IsCommonWord | None = None,
    ) -> None:
        self.catalog = catalog or Catalog()
        self.grammar = grammar or Grammar.default()
        self.entities = EntityRules.for_catalog(self.catalog)
        catalog_words = set(self.catalog.vocabulary)
        numbers = set(NUMBER_WORDS) | set(TENS) | set(UNITS_1_19) | {"hundred"}
        vocabulary = self.grammar.vocabulary() | catalog_words | set(UNIT_SECONDS) | numbers | UNTIL_WORDS
        commands = {i.value for i in Intent} | {"alerts", "logs", "metrics", "escalate"}
        self._is_common = is_common_word or english_words()
        names = catalog_words | commands | UNTIL_WORDS | set(UNIT_SECONDS) | self.grammar.command_words() | _RANGE_NAMES
        self.corrector = Corrector(vocabulary, self._is_common, preferred=commands, names=names)
        metric_words = {w for words in self.catalog.metrics.values() for w in words if " " not in w}
        services = {w for s in self.catalog.services for w in (s, f"{s}s")}
        halves = (
            services
            | metric_words
            | {w for table in (LEVEL_WORDS, DB_METRIC_WORDS) for words in table.values() for w in words}
            | {w for words in self.catalog.systems.values() for w in words if " " not in w}
            | {"logs", "log", "health", "metrics", "graph", "alerts", "status", "oncall"}
            | set(self.catalog.schedules)
        )
        protected = vocabulary | {name.lower() for name in self.catalog.alert_names}
        self.rewriter = Rewriter(metric_words | services | commands, halves, protected, self._is_common)
        self.autocorrect = Autocorrect(self.catalog, self.entities, self._is_common, self.corrector.vocabulary)
        pairs = [
            phrase.split()
            for table in (self.catalog.metrics, self.catalog.systems, LEVEL_WORDS, DB_METRIC_WORDS, ALERT_STATE_WORDS)
            for phrases in table.values()
            for phrase in phrases
            if phrase.count(" ") == 1
        ]
        self._second_words: dict[str, frozenset[str]] = {}
        for first, second in pairs:
            if second.isalpha() and len(second) >= 3:
                self._second_words[first] = self._second_words.get(first, frozenset()) | {second}
        self._write_verbs = {
            word: intent.value for intent in WRITES for word in self.grammar.intents[intent.value].commands
        }
        self._write_verbs["bump"] = Intent.ESCALATE.value
        self._alert_names = frozenset(name.lower() for name in self.catalog.alert_names)
        self._reply_words = frozenset(
            word
            for cls in ("AFFIRM", "POLITE")
            for phrase in self.grammar.lexicon.get(cls, ())
            for word in phrase.split()
        )

    def parse(self, text: str, context: Context | None = None) -> Parse:
        return self.explain(text, context, detail=False).parse

    def explain(self, text: str, context: Context | None = None, detail: bool = True) -> Trace:
        """The parse of `text` for a user whose conversation so far is `context`, with its trace.

        Without `detail`, a strict command or a reply to a question skips entity extraction (the
        trace then has no entities): the webhook's fast path.
        """
        context = context or Context()
        normalized = normalize(text)
        strict = self._strict(normalized)
        asked = same_subject(strict, normalized, context) if strict is not None else None
        if strict is not None and asked is not None:
            parse = self._command(strict.intent, asked[0], 0.9, Source.CONTEXT)
            return self._trace(text, normalized, Analysis((), (), (), ()), parse, asked[1], follow_up=True)
        if strict is not None and not detail:
            # The fast path: a well-formed strict command is taken literally, before any tokenising (a
            # bare "y", which answers the last question, is never strict: see `_strict`).
            return self._trace(text, normalized, Analysis((), (), (), ()), strict, ())
        tokens, rewrites = self.rewriter.rewrite(tokenize(normalized))
        plain = [t.lower for t in tokens if t.kind == "word"]
        answer = reply_to(self._replied(plain), context, self.grammar, self.catalog) if plain else None
        if answer is None and strict is None and plain:
            strict = self._strict_words(tokens)
        if detail or not (answer or strict):
            analysis = self.analyse(tokens, rewrites)
        else:
            analysis = Analysis(tokens, tuple(t.lower for t in tokens), rewrites, ())
        if answer is not None:
            return self._trace(
                text, normalized, analysis, answer, ("intent",) if answer.source is Source.CONTEXT else ()
            )
        if strict is not None:
            return self._trace(text, normalized, analysis, strict, ())
        if not plain:
            return self._trace(text, normalized, analysis, unknown("help" if normalized else None), ())
        scores, features = self._score(analysis)
        parse, used, unsure = self._decide(analysis, features, scores, context)
        follow_up = "FOLLOWUP" in features or refers_back(analysis)
        return self._trace(text, normalized, analysis, parse, used, scores, follow_up, unsure)

    def _strict_words(self, tokens: tuple[Token, ...]) -> Parse | None:
        """Strict syntax after the rewrites: "silence 2 forty five minutes" is not strict, but a command
        word run together with its argument ("healthdatabase", "dbconnections") is."""
        if len(tokens) != 2 or tokens[0].end != tokens[1].start or any(t.kind != "word" for t in tokens):
            return None
        return self._strict(f"{tokens[0].lower} {tokens[1].lower}")

    def _strict(self, normalized: str) -> Parse | None:
        """The strict parse, ignoring trailing "?!." and refusing log terms that are misspelt services."""
        parse = parse_strict(normalized.rstrip("?!. "), self.catalog, self._spell_service)
        if parse is not None and parse.intent is Intent.LOGS:
            for term in terms_of(parse.slots):
                correction = self.corrector.correct(term)
                if correction is not None and correction.corrected in self.catalog.services:
                    return None  # "logs error paymnet": let the language rules fix the typo
        if parse is not None and parse.intent is Intent.GATEWAY:
            endpoint = str(parse.slots.get("endpoint", ""))
            correction = self.corrector.correct(endpoint) if endpoint.isalpha() else None
            if correction is not None and correction.corrected in {"status", "stats", *self.catalog.services}:
                return None  # "gateway stauts": a typo of status or of a service, not a route of that name
        if parse is not None and parse.intent is Intent.CONFIRM and "code" not in parse.slots:
            return None  # a bare "y"/"yes" answers the last question: the context decides
        return parse

    def _spell_service(self, word: str) -> str | None:
        correction = self.corrector.correct(word)
        return correction.corrected if correction is not None else None

    def analyse(self, tokens: tuple[Token, ...], rewrites: tuple[Correction, ...] = ()) -> Analysis:
        """Typo correction and entity extraction over the tokens (already rewritten)."""
        words: list[str] = []
        corrections: list[Correction] = list(rewrites)
        content: list[str] = []
        for token in tokens:
            word = token.lower
            if token.kind == "word" and not token.quoted:
                correction = None if is_camel_case(token.text) else self._correct(word)
                if words and word not in UNIT_SECONDS and (words[-1] in _BEFORE_UNIT or _COUNT.match(words[-1])):
                    correction = self._unit(word) or correction  # "last hout", "2 ours": a unit is due
                if correction is not None:
                    corrections.append(correction)
                    content.extend(correction.corrected.split())
                    word = correction.corrected if " " not in correction.corrected else word
                else:
                    content.append(word)
            words.append(word)
        self._complete_phrases(tokens, words, corrections)
        entities = self.entities.extract(tokens, words)
        analysis = Analysis(tokens, tuple(words), tuple(corrections), tuple(entities), tuple(content))
        return self.autocorrect.names(analysis) or self.autocorrect.commands(analysis) or analysis

    def _complete_phrases(self, tokens: Sequence[Token], words: list[str], corrections: list[Correction]) -> None:
        """The second word of a two-word name slipped ("error rat", "connection poll", "response tme"):
        after the first word of such a name, a word one edit from its second word is that word, even an
        everyday one. Changes `words` in place; the correction joins the others in the trace."""
        for index in range(1, len(words)):
            seconds = self._second_words.get(words[index - 1])
            word = words[index]
            if not seconds or word in self.corrector.vocabulary or len(word) < 3 or not word.isalpha():
                continue
            if tokens[index].quoted:
                continue
            found = [second for second in seconds if confusable(word, second)]
            if len(found) == 1:
                corrections.append(Correction(word, found[0], 1))
                words[index] = found[0]

    def _unit(self, word: str) -> Correction | None:
        """The time unit a word after a number or "last" is one edit from ("hout", "ours", "minuts"), if
        exactly one. Everyday words only for the longer units ("ours" -> hours, not "ways" -> days)."""
        if len(word) < 3 or not word.isalpha():
            return None
        common = self._is_common(word)
        found = {
            UNIT_SECONDS[unit]: unit
            for unit in _UNIT_WORDS
            if (not common or (len(word) >= 4 and len(unit) >= 5)) and confusable(word, unit)
        }
        return Correction(word, next(iter(found.values())), 1) if len(found) == 1 else None

    def _spelled(self, word: str) -> str:
        correction = self._correct(word) if not CODE.match(word) else None
        return correction.corrected if correction is not None and " " not in correction.corrected else word

    def _correct(self, word: str) -> Correction | None:
        """Texting shorthand spelt out ("u" -> you), else a typo corrected, else None."""
        expansion = self.grammar.shorthand.get(word)
        return Correction(word, expansion, 0) if expansion else self.corrector.correct(word)

    def _replied(self, plain: list[str]) -> list[str]:
        """The words spelt out for `answer`, or [] when one of them cannot be in a reply: a reply is
        affirmations, politeness and a code, so "cpu on checkout" needs no spelling of "checkout"."""
        if not any(CODE.match(w) or GLUED_CODE.match(w) for w in plain):
            for word in plain:
                if word not in self._reply_words and self._spelled(word) not in self._reply_words:
                    return []
        return [self._spelled(w) for w in plain]

    def _score(self, analysis: Analysis) -> tuple[list[Score], set[str]]:
        """Every intent's score for the text, and the features it was scored on."""
        content = analysis.content
        found = self.grammar.phrases(content)
        features = analysis.labels() | self.grammar.lexicon_features(content, found)
        if any(t.quoted for t in analysis.tokens):
            features.add("QUOTED")
        if any(t.kind == "path" for t in analysis.tokens):
            features.add("PATH")
        lead = self.grammar.lead_word(content)
        if lead is not None and self.grammar.has_word("ACTION", lead) and not _escalation(analysis, lead):
            features.add("ACTIONLEAD")
        features |= self._objects(analysis)
        return self.grammar.score(content, features, found), features

    def _objects(self, analysis: Analysis) -> set[str]:
        """ "OBJECT:silence" when a command word is followed by the alert it acts on ("silence HighMemory",
        "ack alert 2", "escalate it"): in a ramble that also says "the alert keeps going off", the verb
        with its object is what is asked."""
        found: set[str] = set()
        starts = {e.start for e in analysis.entities if e.label in ("ALERTNAME", "ALERTREF")}
        for index, word in enumerate(analysis.words):
            intent = self._write_verbs.get(word)
            if intent is None:
                continue
            following = index + 1
            while following < len(analysis.words) and analysis.words[following] in ("the", "that", "alert"):
                following += 1
            word = analysis.words[following] if following < len(analysis.words) else ""
            if following in starts or word == "it" or (word.isdigit() and len(word) <= 3):
                found.add(f"OBJECT:{intent}")
        return found

    def _decide(
        self, analysis: Analysis, features: set[str], scores: list[Score], context: Context
    ) -> tuple[Parse, tuple[str, ...], str]:
        """The command for a free-form text: the best intent, unless it is weak, refused, ambiguous or a
        write the text leaves unsure (the third value says why it asks, "" otherwise)."""
        table = {s.intent: s.total for s in scores}
        real = [s for s in scores if s.intent not in PSEUDO_INTENTS]
        best, second = real[0], real[1]
        out_of_scope = table.get(OUT_OF_SCOPE, 0.0)
        refused = out_of_scope > 0 and out_of_scope >= best.total
        if not refused and best.total < self.grammar.min_score:
            followed = self._continue(analysis, context) if context.intent is not None else None
            if followed is not None:
                return (*followed, "")
            smalltalk = table.get(SMALLTALK, 0.0)
            chat = smalltalk > 0 and smalltalk >= best.total
            return unknown(None if chat else self._suggest_from(best, analysis), best, second), (), ""
        if refused:
            return unknown(None, best, second), (), ""

        intent = self._stay_on_topic(Intent(best.intent), best, analysis, context)
        slots = fill(intent, analysis, self.catalog)
        unsure = str(slots.pop(UNSURE, "")) if intent in WRITES else ""
        slots.pop(UNSURE, None)
        alert = slots.get("alert")
        if intent in WRITES and isinstance(alert, str) and alert.isalpha() and alert.islower():
            if self._is_common(alert) and alert not in self._alert_names:
                del slots["alert"]  # "escalate my complaint", "silence is golden": no alert is named
                unsure = unsure or f"{alert!r} is an everyday word, not an alert name"
        if second.total >= self.grammar.min_score and best.total - second.total < self.grammar.margin:
            return unknown(self._suggestion(intent, slots), best, second), (), ""

        used: tuple[str, ...] = ()
        required = self.grammar.intents[intent.value].required
        missing = [s for s in required if s not in slots]
        remembered = context.intent is not None or bool(context.slots)
        if remembered and (not best.explicit or "FOLLOWUP" in features or missing or refers_back(analysis)):
            slots, used = merge(context, intent, slots)
        elif remembered and carries_service(context, intent, slots, analysis.words):
            slots, used = {**slots, "service": context.slots["service"]}, ("service",)
        if intent in WRITES and "alert" in required and "alert" not in slots and len(context.alerts) == 1:
            slots["alert"], used = "1", (*used, "alert")  # the only alert the user was sent
        if intent is Intent.SILENCE and "until" in slots:
            required = tuple(r for r in required if r != "duration_s")
        if unsure:  # the suggestion holds only what the text itself says, never an alert from before
            return unknown(self._suggestion(intent, own(slots, used)), best, second), (), unsure
        if any(s not in slots for s in required):
            return unknown(self._suggestion(intent, slots), best, second), used, unsure
        source = Source.CONTEXT if used else Source.NL
        return self._command(intent, slots, confidence_of(best, second), source), used, ""

    def _stay_on_topic(self, intent: Intent, best: Score, analysis: Analysis, context: Context) -> Intent:
        """After `graph memory …`, "what about disk?" is still a graph: a text that names no command and
        whose slots all fit the previous command continues it."""
        if best.explicit or context.intent is None or context.intent is intent or intent in _NEVER_A_CONTINUATION:
            return intent
        labels = analysis.labels() & _SLOT_LABELS
        if labels and labels <= _ACCEPTS.get(context.intent, frozenset()):
            return context.intent
        return intent

    def _continue(self, analysis: Analysis, context: Context) -> tuple[Parse, tuple[str, ...]] | None:
        """A text with no command of its own that continues the previous one, if it is one."""
        assert context.intent is not None
        content = analysis.content
        moves_on = self.grammar.has("REPEAT", content) or self.grammar.has("FOLLOWUP", content)
        if content and moves_on and self.grammar.only({"REPEAT", "POLITE", "FOLLOWUP"}, content):
            return self._command(context.intent, query_slots(context), 0.8, Source.CONTEXT), ("intent",)
        if not analysis.labels() & _ACCEPTS.get(context.intent, frozenset()):
            return None
        slots = fill(context.intent, analysis, self.catalog)
        slots, used = merge(context, context.intent, slots)
        required = self.grammar.intents[context.intent.value].required
        if any(s not in slots for s in required):
            return None
        return self._command(context.intent, slots, 0.8, Source.CONTEXT), ("intent", *used)

    def _command(self, intent: Intent, slots: Slots, confidence: float, source: Source) -> Parse:
        return Parse(intent, slots, render(intent, slots, self.catalog), confidence, source)

    def _suggest_from(self, best: Score, analysis: Analysis) -> str | None:
        """The command to offer for a text too weak to run."""
        if best.total > 0:
            intent = Intent(best.intent)
            return self._suggestion(intent, fill(intent, analysis, self.catalog))
        service = analysis.first("SERVICE")
        if service is not None:
            return self._suggestion(Intent.METRICS, {"service": service.value})
        return None

    def _suggestion(self, intent: Intent, slots: Mapping[str, SlotValue]) -> str | None:
        """A runnable strict command close to what was asked, filling required slots with defaults."""
        slots = {k: v for k, v in slots.items() if k in SLOTS_OF.get(intent, ())}
        if intent in (Intent.METRICS, Intent.GRAPH) and "metric" not in slots:
            slots["metric"] = next(iter(self.catalog.metrics))
        if intent is Intent.SILENCE:
            if "alert" not in slots:
                return "alerts"
            if "until" not in slots:
                slots.setdefault("duration_s", 3600)
            else:
                slots.pop("duration_s", None)
        if intent in (Intent.ACK, Intent.ESCALATE) and "alert" not in slots:
            return "alerts"
        if intent is Intent.TAKE and "schedule" not in slots:
            return "oncall"  # "take a break": offer to look, never to take a pager
        return render(intent, slots, self.catalog) or None

    def _trace(
        self,
        text: str,
        normalized: str,
        analysis: Analysis,
        parse: Parse,
        used: tuple[str, ...],
        scores: Sequence[Score] = (),
        follow_up: bool = False,
        unsure: str = "",
    ) -> Trace:
        return Trace(
            text=text,
            normalized=normalized,
            tokens=analysis.words,
            corrections=analysis.corrections,
            entities=analysis.entities,
            scores={s.intent: s.total for s in scores},
            reasons={s.intent: s.hits for s in scores if s.hits},
            context_used=used,
            parse=parse,
            unsure=unsure,
            follow_up=follow_up,
        )


def _escalation(analysis: Analysis, lead: str) -> bool:
    """ "bump it", "move alert 1 to the next step", "kick HighCPU up the chain": the verb moves an alert
    on, it does not change a system (so the text is not out of scope for starting with an action)."""
    if lead not in _MOVING_VERBS or lead not in analysis.words:
        return False
    start = analysis.words.index(lead) + 1
    following = start
    while following < len(analysis.words) and analysis.words[following] in ("the", "alert", "alarm"):
        following += 1
    word = analysis.words[following] if following < len(analysis.words) else ""
    named = any(
        e.start <= following and e.end > start for e in analysis.entities if e.label in ("ALERTREF", "ALERTNAME")
    )
    return named or word in _REFERENCE_NEXT or (word.isdigit() and len(word) <= 3)
