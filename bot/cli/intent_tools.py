"""`operator intents`: the tuning REPL, the batch parser and the case-file tester.

All three parse with per-user context exactly as the live bot does: the same `Parser`, the same
context store, the same `remember` step after every text.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from bot.state.memory.context import InMemoryContextStore
from intents import Context, Parser, Trace, remember
from intents.evaluate import Report, judge, read_cases

DEFAULT_REPL_USER = "+15550000000"


class ContextualParser:
    """A parser plus per-user context: what the batch tools and the REPL run texts through."""

    def __init__(self, parser: Parser, store: InMemoryContextStore | None = None) -> None:
        self.parser = parser
        self.store = store if store is not None else InMemoryContextStore()

    def explain(self, user: str, text: str) -> Trace:
        context = self.store.get_now(user)
        trace = self.parser.explain(text, context)
        self.store.put_now(user, remember(context, trace.parse))
        return trace

    def context(self, user: str) -> Context:
        return self.store.get_now(user)

    def reset(self, user: str) -> None:
        self.store.put_now(user, Context())


def parse_jsonl(parser: ContextualParser, lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """One contract output object per input line `{"user": ..., "text": ...}`, in order.

    A line that is not such an object gives an `unknown` output with an `error` field, so the
    output stays aligned with the input.
    """
    for line in lines:
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            user, text = str(item.get("user", "")), item["text"]
            if not isinstance(text, str):
                raise TypeError("text must be a string")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            yield {"intent": "unknown", "slots": {}, "command": "", "confidence": 0.0, "source": "nl",
                   "error": f"bad input line: {type(exc).__name__}"}  # fmt: skip
            continue
        yield parser.explain(user, text).parse.to_json()


def run_case_files(parser: Parser, paths: Iterable[Path]) -> Report:
    """Every case of every file, each file with fresh context (a file's conversations are its own)."""
    report = Report()
    for path in paths:
        contextual = ContextualParser(parser)
        with path.open(encoding="utf-8") as handle:
            for case in read_cases(handle):
                parse = contextual.explain(case.user, case.text).parse
                report.outcomes.append(judge(case, parse.to_json()))
    return report


def case_paths(arguments: Iterable[str]) -> list[Path]:
    """Case files from the arguments; a directory stands for the `*.jsonl` files in it."""
    paths: list[Path] = []
    for argument in arguments:
        path = Path(argument)
        paths.extend(sorted(path.glob("*.jsonl")) if path.is_dir() else [path])
    return paths


def format_trace(trace: Trace, context: Context) -> str:
    """The REPL's view of one parse: every stage, then the command."""
    parse = trace.parse
    lines = [f"  normalised  {trace.normalized!r}", f"  tokens      {' '.join(trace.tokens) or '-'}"]
    if trace.corrections:
        fixes = ", ".join(f"{c.original}->{c.corrected}" for c in trace.corrections)
        lines.append(f"  corrected   {fixes}")
    entities = " | ".join(
        f"{e.label} {e.text!r}" + (f"={e.value}" if str(e.value) != e.text else "") for e in trace.entities
    )
    lines.append(f"  entities    {entities or '-'}")
    ranked = sorted(((v, k) for k, v in trace.scores.items() if v), reverse=True)[:4]
    if not ranked:
        lines.append("  scores      -")
    for position, (total, intent) in enumerate(ranked):
        why = ", ".join(f"{name} {weight:+g}" for name, weight in trace.reasons.get(intent, ()))
        lines.append(f"{'  scores' if position == 0 else '':<14}{intent} {total:g} ({why})")
    if context.intent is not None or context.suggestion:
        before = f"{context.intent.value if context.intent else '-'} {dict(context.slots)}"
        if context.suggestion:
            before += f" suggestion={context.suggestion!r}"
        lines.append(f"  context     {before}")
    if trace.context_used:
        lines.append(f"  from ctx    {', '.join(trace.context_used)}")
    if trace.unsure:
        lines.append(f"  asks        a write, unsure: {trace.unsure}")
    shown = parse.command or (f"unknown (suggest: {parse.suggestion})" if parse.suggestion else "unknown")
    lines.append(f"  => {shown}   [{parse.source.value}, {parse.confidence:.2f}]")
    lines.append(f"     {json.dumps(parse.to_json(), ensure_ascii=False)}")
    return "\n".join(lines)


REPL_HELP = """Type a text to see how it parses. Commands:
  :user NUMBER   switch to another user (each has their own context)
  :context       show the current user's context
  :reset         forget the current user's context
  :help          this text
  :quit          leave (or Ctrl-D)"""


def repl(parser: Parser, stdin: IO[str], stdout: IO[str], history_file: Path | None = None) -> None:
    """The interactive tuning loop; works from a pipe too (no prompt echo then)."""
    contextual = ContextualParser(parser)
    user = DEFAULT_REPL_USER
    interactive = stdin.isatty()
    if interactive:
        _enable_history(history_file)
        print(REPL_HELP, file=stdout)
    while True:
        try:
            line = input(f"{user}> ") if interactive else stdin.readline()
        except EOFError:
            break
        if not interactive and not line:
            break
        line = line.rstrip("\n")
        if not line.strip():
            continue
        if line.startswith(":"):
            command, _, argument = line[1:].strip().partition(" ")
            if command in {"quit", "q", "exit"}:
                break
            if command == "user" and argument.strip():
                user = argument.strip()
                print(f"  user is now {user}", file=stdout)
            elif command == "reset":
                contextual.reset(user)
                print("  context cleared", file=stdout)
            elif command == "context":
                context = contextual.context(user)
                print(f"  {context if not context.empty else 'no context'}", file=stdout)
            else:
                print(REPL_HELP, file=stdout)
            continue
        context = contextual.context(user)
        trace = contextual.explain(user, line)
        print(format_trace(trace, context), file=stdout)
        stdout.flush()


def _enable_history(history_file: Path | None) -> None:
    try:
        import atexit
        import readline
    except ImportError:  # pragma: no cover - readline is missing only on unusual builds
        return
    path = history_file or Path(os.environ.get("OPERATOR_HISTORY", Path.home() / ".operator_intents_history"))
    try:
        readline.read_history_file(path)
    except OSError:
        pass
    readline.set_history_length(1000)
    atexit.register(_save_history, path)


def _save_history(path: Path) -> None:
    import readline

    try:
        readline.write_history_file(path)
    except OSError:
        pass
