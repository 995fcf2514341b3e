"""Words that carry no search meaning: never kept as log terms, never taken as alert or route names."""

from __future__ import annotations

from spacy.lang.en.stop_words import STOP_WORDS

FILLER_WORDS = frozenset(
    """
    any anything some show me please pls plz the in for give get gimme lemme find search look looking see
    check pull fetch dump print list display tell need want got there theres whats hows thats im ive id
    can could would should u you ur ya we us our my mine i a an on at from of to since over during within
    today tonight now right just currently lately recently ago recent latest last past new newest
    happening happened going been seeing seen showing shows appearing occurring mention mentions mentioning
    contain contains containing match matches matching say says saying said related regarding about with
    logs log grep greps loglines logline lines line entries entry messages message output events event
    hits results count many much lot lots stuff things thing occurrences sign signs instances service svc
    services level range terms term word words string text keyword query app application quick quickly
    tail dig up thrown throwing spitting complaining is are was were be being did do does have has had what
    which where when who why how hey hi yo ok okay thanks thx ty lol pls k kinda sorta really very also
    too still again already then ever yet maybe pretty real that this it its those these them they
    everything something all every each few couple top first like go gonna wanna lets let us
    happen happens appear appears occur occurs coming come came hour hours minute minutes min mins
    day days week weeks sec secs second seconds prod production env environment stuff
    instead only same bout wbu either aswell as well and or but so now
    team teams folks people guys squad crew devs
    """.split()
)
"""Filler that on-call texts are full of: verbs of asking, time words, pronouns, chat noise."""

CONTENT_WORDS = frozenset("full empty bottom front back side part name call move serious amount down out".split())
"""Words spaCy lists as stop words that mean something in a log search ("disk full", "call failed")."""

FILLER = (frozenset(STOP_WORDS) - CONTENT_WORDS) | FILLER_WORDS
"""Everything dropped from log search terms."""
