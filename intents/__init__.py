"""Operator's natural-language core: text in, canonical command out. Pure: no I/O, no globals."""

from intents.catalog import Catalog
from intents.followup import remember
from intents.grammar import Grammar
from intents.models import Context, Intent, Parse, Source, Trace
from intents.parser import Parser

__all__ = ["Catalog", "Context", "Grammar", "Intent", "Parse", "Parser", "Source", "Trace", "remember"]
