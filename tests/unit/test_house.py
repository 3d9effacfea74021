"""The house rules of docs/design.md's code map, checked on the source tree.

- The package graph of xarch/ has no cycle: no import runs back up (function-level imports
  count too: a lazy import is still a dependency).
- Only xarch/cli/ imports click: the library can be used without the command line.
"""

from __future__ import annotations

import ast
from pathlib import Path

import xarch

ROOT = Path(xarch.__file__).parent


def _unit(parts: tuple[str, ...]) -> str:
    """The unit of the graph: a top-level module or package (sources/* count one by one)."""
    head = parts[0].removesuffix(".py")
    return f"{head}.{parts[1].removesuffix('.py')}" if head == "sources" and len(parts) > 1 else head


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
            if node.module == "xarch":
                names += [f"xarch.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
    return names


def _graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for path in ROOT.rglob("*.py"):
        source = _unit(path.relative_to(ROOT).parts)
        for name in _imports(path):
            parts = name.split(".")
            if parts[0] != "xarch" or len(parts) < 2 or parts[1] == "__version__":
                continue
            target = _unit(tuple(parts[1:]))
            if target != source:
                edges.setdefault(source, set()).add(target)
    return edges


def _cycle(edges: dict[str, set[str]]) -> list[str]:
    """One cycle of EDGES as a path, or []."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = 2
        stack.pop()
        return []

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return []


def test_no_import_runs_back_up() -> None:
    assert _cycle(_graph()) == []


def test_the_cycle_finder_finds_one() -> None:  # the check above can fail
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_only_the_cli_imports_click() -> None:
    users = sorted(str(path.relative_to(ROOT)) for path in ROOT.rglob("*.py")
                   if "click" in _imports(path) and path.relative_to(ROOT).parts[0] != "cli")
    assert users == []


def test_command_modules_live_in_the_cli() -> None:
    assert sorted(str(p.relative_to(ROOT)) for p in ROOT.rglob("commands.py")) == []
