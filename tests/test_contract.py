"""The command contract in the repository (docs/commands.md) and the parser (intents/) name the same intents,
and each strict example of the contract's table parses to its intent."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from intents import Catalog, Parser
from intents.models import Intent

CONTRACT = Path(__file__).resolve().parents[1] / "docs" / "commands.md"


def table() -> list[tuple[list[str], list[str]]]:
    """(intents, strict examples) of each row of the contract's intents table."""
    text = CONTRACT.read_text("utf-8")
    section = text.split("## Canonical intents and their slots", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        rows.append((re.findall(r"`([a-z]+)`", cells[0]), re.findall(r"`([^`]+)`", cells[-1])))
    return rows


def test_the_contract_and_the_parser_have_the_same_intents() -> None:
    documented = {name for names, _ in table() for name in names}
    assert documented == {intent.value for intent in Intent}


def test_the_readme_points_at_the_contract_in_the_repository() -> None:
    readme = (CONTRACT.parents[1] / "README.md").read_text("utf-8")
    assert "(docs/commands.md)" in readme and "../shared" not in readme


@pytest.fixture(scope="module")
def contract_parser() -> Parser:
    return Parser(Catalog.from_config({"schedules": {"payments": {}}, "alert_names": ["HighCPU"]}))


@pytest.mark.parametrize("names, example", [(names, example) for names, examples in table() for example in examples])
def test_each_strict_example_parses_to_its_intent(contract_parser: Parser, names: list[str], example: str) -> None:
    assert contract_parser.parse(example).intent.value in names
