"""The table-driven corpus: every case of `tests/intents/cases/*.jsonl`, one test each.

Each file is read in order with per-user context, as the batch tool does, so conversations work; the
catalog is `corpus.yaml`'s (schedules, alert names, monitors), as `operator intents test --config` reads it.
Cases the parser gets wrong today are listed in `known_failures.txt` and run as strict xfails.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli.intent_tools import ContextualParser
from intents import Parser
from intents.evaluate import Case, Outcome, judge, read_cases
from tests.intents.conftest import CORPUS_CONFIG

CASES = Path(__file__).parent / "cases"
KNOWN_FAILURES = Path(__file__).parent / "known_failures.txt"
MIN_JOINT = 0.97
"""The suite fails if joint accuracy over the corpus drops below this."""


def _known_failures() -> set[str]:
    lines = KNOWN_FAILURES.read_text("utf-8").splitlines()
    return {line.split()[0] for line in lines if line.strip() and not line.startswith("#")}


def _conversations() -> list[tuple[Path, list[Case]]]:
    return [(path, read_cases(path.read_text("utf-8").splitlines())) for path in sorted(CASES.glob("*.jsonl"))]


def _params() -> list[object]:
    known = _known_failures()
    params = []
    for path, cases in _conversations():
        for index, case in enumerate(cases):
            marks = [pytest.mark.xfail(reason="listed in known_failures.txt", strict=True)] if case.id in known else []
            params.append(pytest.param(path.name, index, id=case.id, marks=marks))
    return params


@pytest.fixture(scope="module")
def outcomes(parser: Parser) -> dict[tuple[str, int], Outcome]:
    """Every file parsed once, in order, with context; keyed by (file, index)."""
    results = {}
    for path, cases in _conversations():
        contextual = ContextualParser(parser)
        for index, case in enumerate(cases):
            results[(path.name, index)] = judge(case, contextual.explain(case.user, case.text).parse.to_json())
    return results


@pytest.mark.parametrize(("file", "index"), _params())
def test_case(outcomes: dict[tuple[str, int], Outcome], file: str, index: int) -> None:
    outcome = outcomes[(file, index)]
    assert outcome.ok, (
        f"{outcome.case.text!r}: want {outcome.case.intent} {dict(outcome.case.slots)}, got {outcome.got}"
    )


def test_corpus_is_large_and_well_formed() -> None:
    cases = [case for _, file_cases in _conversations() for case in file_cases]
    ids = [case.id for case in cases]
    assert len(cases) >= 2100
    assert len(ids) == len(set(ids)), "case ids must be unique"
    assert _known_failures() <= set(ids), "known_failures.txt names a case that does not exist"


def test_operator_intents_test_passes_the_threshold() -> None:
    """The suite runs the corpus through the real console command, with its threshold."""
    command = [sys.executable, "-m", "bot.cli", "intents", "test", str(CASES), "--config", str(CORPUS_CONFIG),
               "--min-joint", str(MIN_JOINT)]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "joint accuracy" in result.stdout
    assert "confusion" in result.stdout
