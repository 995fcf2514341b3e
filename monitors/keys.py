"""Misspelled config keys, named with the closest valid one.

A key nobody reads is worse than an error: `monitrs:` left the bot on its embedded defaults and
`timout_s: 10` left Prometheus at 3 s, both silently. Config models forbid extra keys, and this turns
pydantic's "extra inputs are not permitted" into a line that says where and what was probably meant:
"monitors.prometheus.timout_s: unknown (did you mean timeout_s?)". Values are never echoed (they may be
secrets or internal URLs); keys are, since a key is what the reader must find and fix.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

Loc = Sequence[str | int]


def closest(word: str, candidates: Collection[str]) -> str | None:
    """The valid key `word` was most likely meant to be, if any is close enough."""
    lowered = {c.lower(): c for c in candidates}
    found = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)
    return lowered[found[0]] if found else None


def unknown(path: str, word: str, candidates: Collection[str]) -> str:
    """ "monitors.prometheus.timout_s: unknown (did you mean timeout_s?)" """
    guess = closest(word, candidates)
    return f"{path}: unknown" + (f" (did you mean {guess}?)" if guess else "")


def keys_of(model: type[BaseModel]) -> list[str]:
    """The keys a model accepts: field names and their aliases."""
    keys: list[str] = []
    for name, info in model.model_fields.items():
        keys.append(name)
        if info.alias:
            keys.append(info.alias)
    return keys


def keys_at(model: type[BaseModel], loc: Loc) -> list[str]:
    """The keys valid at `loc` inside `model` (following fields, dict values, list items, union members)."""
    return [key for tp in _walk(model, loc).types for model_ in _models(tp) for key in keys_of(model_)]


@dataclass
class _Walk:
    types: list[Any]
    """What the location holds (several when a union was not narrowed)."""
    shown: tuple[str | int, ...]
    """The location as a person reads it: without the union member pydantic names ("metrics.queue")."""
    branch: tuple[tuple[str | int, ...], bool] | None = None
    """Where a union was entered and whether through a model member (a mapping was given) or another."""


def _walk(model: type[BaseModel], loc: Loc) -> _Walk:
    walk = _Walk([model], ())
    for part in loc:
        members = [m for tp in walk.types for m in _members(tp) if m is not type(None)]
        if len(members) > 1 and isinstance(part, str):  # pydantic tags each union member it tried
            models = [m for m in _models_of(members) if m.__name__ == part]
            walk.branch = (walk.shown, bool(models))
            walk.types = list(models) or [m for m in members if m not in _models_of(members)]
            continue
        walk.types = [nxt for tp in walk.types for nxt in _step(tp, part)]
        walk.shown = (*walk.shown, part)
    return walk


def _step(tp: Any, part: str | int) -> Iterator[Any]:
    for candidate in _members(tp):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            for name, info in candidate.model_fields.items():
                if part in (name, info.alias):
                    yield info.annotation
            continue
        origin, args = typing.get_origin(candidate), typing.get_args(candidate)
        if not isinstance(origin, type):
            continue
        if issubclass(origin, Mapping):
            yield args[1] if len(args) == 2 else Any
        elif issubclass(origin, list | tuple | set | frozenset) and isinstance(part, int):
            yield args[0] if args else Any


def _members(tp: Any) -> list[Any]:
    """The alternatives of a union (and `X | None`), or the type itself."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return [m for arg in typing.get_args(tp) for m in _members(arg)]
    return [tp]


def _models_of(members: list[Any]) -> list[type[BaseModel]]:
    return [m for m in members if isinstance(m, type) and issubclass(m, BaseModel)]


def _models(tp: Any) -> list[type[BaseModel]]:
    return _models_of(_members(tp))


def describe_errors(
    error: ValidationError, model: type[BaseModel], prefix: Loc = (), show: Callable[[Loc], Loc] | None = None
) -> list[str]:
    """One line per problem: unknown keys with the closest valid one, others with pydantic's reason.

    The path starts with `prefix` ("monitors", "prometheus") and leaves out pydantic's union member
    names; where a mapping was given for a "text or mapping" setting, the complaint that it is not text is
    dropped. `show` may rewrite a path before it is printed (to mask a phone number in it).
    """
    walked = [(detail, _walk(model, tuple(detail["loc"]))) for detail in error.errors()]
    via_model = {w.branch[0] for _, w in walked if w.branch is not None and w.branch[1]}
    lines: list[str] = []
    for detail, walk in walked:
        if walk.branch is not None and not walk.branch[1] and walk.branch[0] in via_model:
            continue
        shown = tuple((show or tuple)(walk.shown))
        path = ".".join(str(p) for p in (*prefix, *shown)) or "config"
        if detail["type"] == "extra_forbidden" and detail["loc"]:
            keys = keys_at(model, tuple(detail["loc"])[:-1])
            lines.append(unknown(path, str(detail["loc"][-1]), keys))
        else:
            lines.append(f"{path}: {detail['msg']}")
    return lines
