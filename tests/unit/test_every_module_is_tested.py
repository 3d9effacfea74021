"""Every module of xarch/ is imported by some test file, and by a unit test (issue 15: a module no
test imports is a module nobody checks; one only integration tests import is checked only where
dockerd, registries and QEMU are). The modules are read from the file tree when the test runs, so
a module that is added, moved or renamed is checked under its new name without editing this file.

The lists below name the modules still without such a test, each by the end of its dotted name.
They may only shrink: an entry whose module is now imported, or that names no module (moved,
renamed, removed), fails too, so a list never hides a module it no longer describes.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# Imported by no test file at all.
NOT_YET: set[str] = set()

# Imported by integration tests only (they run with dockerd, a registry, QEMU or servers).
NOT_YET_IN_UNIT = {
    "registry.assemble",
    "registry.pull", "registry.referrers",
    "run.buildx_config",
    "sign.cosign",
    "debian.effects", "debian.fetch",
    "debian.update",
}


def modules(package: Path) -> list[str]:
    """Dotted names of every module under PACKAGE (a folder with __init__.py); a package is named
    by its folder."""
    names = []
    for path in sorted(package.rglob("*.py")):
        if path.name == "__main__.py":
            continue  # `python -m` entry points run the CLI when imported; their target is tested
        parts = path.relative_to(package.parent).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def imported_by(test_files: list[Path]) -> set[str]:
    """Every dotted name TEST_FILES import (`import a.b`, `from a.b import c` gives a.b and a.b.c),
    with the packages that hold them: importing a.b.c runs a/__init__.py and a/b/__init__.py."""
    names: set[str] = set()
    for path in test_files:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return names | {name.rsplit(".", depth)[0] for name in names for depth in range(1, name.count(".") + 1)}


def matching(entry: str, names: list[str]) -> list[str]:
    """The module names ENTRY (the end of a dotted name) names."""
    return [name for name in names if name == entry or name.endswith(f".{entry}")]


def problems(package: Path, tests: Path, not_yet: set[str], what: str = "test file") -> list[str]:
    """What is wrong with PACKAGE's modules and the test files under TESTS, given NOT_YET."""
    names = modules(package)
    seen = imported_by(sorted(tests.rglob("test_*.py")))
    untested = {name for name in names if name not in seen}
    found = []
    for entry in sorted(not_yet):
        hits = matching(entry, names)
        if len(hits) != 1:
            found.append(f"list entry {entry!r} names {len(hits)} modules ({', '.join(hits)}): "
                         "make it name one")
        elif hits[0] not in untested:
            found.append(f"{hits[0]} is imported by a {what} now: remove {entry!r} from the list")
    listed = {hit for entry in not_yet for hit in matching(entry, names)}
    found += [f"{name} is imported by no {what}: write a unit test for it"
              for name in sorted(untested - listed)]
    return sorted(found)


def test_every_module_is_imported_by_a_test() -> None:
    assert problems(REPO / "xarch", REPO / "tests", NOT_YET) == []


def test_every_module_is_imported_by_a_unit_test() -> None:
    assert problems(REPO / "xarch", REPO / "tests" / "unit", NOT_YET | NOT_YET_IN_UNIT, "unit test") == []


def test_the_check_sees_untested_moved_and_stale_modules(tmp_path: Path) -> None:
    """Not blind: an untested module, a package, a list entry that is tested or names nothing."""
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    for name in ("__init__.py", "a.py", "b.py", "c.py", "sub/__init__.py", "sub/d.py"):
        (package / name).write_text("")
    tests = tmp_path / "tests" / "unit"
    tests.mkdir(parents=True)
    (tests / "test_a.py").write_text("import pkg.a\nfrom pkg.sub import d\n")
    (tests / "helper.py").write_text("import pkg.b\n")  # not a test file: does not count
    (tests / "test_c.py").write_text("from pkg import c\n")
    assert problems(package, tmp_path / "tests", {"a", "moved"}) == [
        "list entry 'moved' names 0 modules (): make it name one",
        "pkg.a is imported by a test file now: remove 'a' from the list",
        "pkg.b is imported by no test file: write a unit test for it",
    ]
    assert sorted(modules(package)) == ["pkg", "pkg.a", "pkg.b", "pkg.c", "pkg.sub", "pkg.sub.d"]
