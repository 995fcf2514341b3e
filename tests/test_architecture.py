"""The architecture as a test over the source: which room may import which, no cycles, small modules.

Every import counts, wherever it is written: at the top, inside a function, under `TYPE_CHECKING`. An
import names the module it reads from: `from intents import Parser` depends on the package `intents`
(its `__init__`), `from intents.parser import Parser` on `intents.parser`. So a package may gather its
submodules' names in its `__init__`, but a submodule that imports through its own package's
`__init__` closes a cycle and fails here. Run it alone with `pytest tests/test_architecture.py` (it
reads files; it imports nothing of ours).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "intents", "monitors")
MAX_LINES = 500


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))}


MODULES = _modules()


def _owner(name: str) -> str | None:
    """The module of ours that `name` (a module, or a name inside one) is, or None for another library."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str) -> set[str]:
    """Our modules that `module` imports anywhere in its source."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            targets = [f"{base}.{alias.name}" for alias in node.names] or [base]
        for target in targets:
            owner = _owner(target)
            if owner is not None:
                found.add(owner)
    found.discard(module)
    return {name for name in found if name in MODULES}


GRAPH = {module: imports_of(module) for module in MODULES}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_modules_are_found() -> None:
    assert {"bot.web.app", "bot.core.conversation", "intents.parser", "monitors.base"} <= MODULES.keys()


def test_no_import_cycles() -> None:
    assert _cycles(GRAPH) == []


def test_the_checker_sees_a_cycle_hidden_in_a_function() -> None:
    """The check itself: a cycle closed by an import inside a function body is still a cycle."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


@pytest.mark.parametrize(("package", "forbidden"), [("intents", ("bot", "monitors")), ("monitors", ("bot",))])
def test_the_inner_rooms_do_not_import_the_outer_ones(package: str, forbidden: tuple[str, ...]) -> None:
    wrong = {
        module: sorted(name for name in imported if name.split(".")[0] in forbidden)
        for module, imported in GRAPH.items()
        if module.split(".")[0] == package
    }
    assert {module: names for module, names in wrong.items() if names} == {}


def test_no_module_is_over_500_lines() -> None:
    sizes = {module: len(path.read_text("utf-8").splitlines()) for module, path in MODULES.items()}
    assert {module: lines for module, lines in sizes.items() if lines > MAX_LINES} == {}
