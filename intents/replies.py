"""Answers to a question the bot asked: "Y" to a suggestion, "yes 4821" or a bare code to a write's question.

A write's code ties the answer to the one proposal it confirms; a bare "Y" is only ever the suggested
command itself (the bot decides what a bare "Y" means for a pending write).
"""

from __future__ import annotations

import re

from intents.catalog import Catalog
from intents.grammar import Grammar
from intents.models import Context, Intent, Parse, Source
from intents.strict import parse_strict

CODE = re.compile(r"^\d{3,8}$")
GLUED_CODE = re.compile(r"^(?:y|yes|confirm)(\d{3,8})$")
STRICT_AFFIRM = frozenset({"y", "yes", "confirm"})
STRONG_AFFIRM = frozenset({"y", "yes", "yep", "yeah", "yup", "ya", "yea", "yess", "confirm", "confirmed",
                            "affirmative", "do it", "go ahead", "go for it", "yes please", "please do"})  # fmt: skip


def answer(plain: list[str], context: Context, grammar: Grammar, catalog: Catalog) -> Parse | None:
    """Replies to a question the bot asked: "Y", "yes 4821", a bare code."""
    if not plain:
        return None
    code = next((w for w in plain if CODE.match(w)), None)
    glued = next((m.group(1) for w in plain if (m := GLUED_CODE.match(w))), None)
    code = code or glued
    rest = [w for w in plain if w != code and not GLUED_CODE.match(w)]
    affirm = grammar.only({"AFFIRM", "POLITE"}, rest) and grammar.has("AFFIRM", rest)
    if code is not None and (affirm or glued):
        source = Source.STRICT if (glued or (len(rest) == 1 and rest[0] in STRICT_AFFIRM)) else Source.NL
        return Parse(Intent.CONFIRM, {"code": code}, f"y {code}", 1.0 if source is Source.STRICT else 0.9, source)
    if code is not None and not rest and code == context.pending_code:
        return Parse(Intent.CONFIRM, {"code": code}, f"y {code}", 0.9, Source.CONTEXT)
    if code is None and affirm:
        if context.suggestion:
            suggested = parse_strict(context.suggestion, catalog)
            if suggested is not None:
                return Parse(suggested.intent, suggested.slots, suggested.command, 0.9, Source.CONTEXT)
        if context.pending_code:
            slots = {"code": context.pending_code}
            return Parse(Intent.CONFIRM, slots, f"y {context.pending_code}", 0.9, Source.CONTEXT)
        if " ".join(w for w in rest if not grammar.has("POLITE", [w])) in STRONG_AFFIRM:
            return Parse(Intent.CONFIRM, {}, "confirm", 0.7, Source.NL)
    return None
