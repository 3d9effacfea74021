"""Every skip goes through tests/support/needs.py: XARCH_REQUIRE_TOOLS=1 fails every missing part.

Two tests once called pytest.skip for a missing keyring or binfmt entry even in CI, so a fresh
machine without them looked green. This closes the class: no skip outside the helper, and the
rule is written once: nothing else reads XARCH_REQUIRE_TOOLS, and the helper's functions are
imported from it under their own names (no second home such as a conftest re-export or an alias).
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
HELPER = TESTS / "support" / "needs.py"
# pytest.skip(...), pytest.mark.skip/skipif, pytest.importorskip(...), and unittest's skips.
SKIPPERS = {"skip", "skipif", "importorskip", "skipTest", "SkipTest", "xfail"}


def skips_outside_the_helper(folder: Path) -> list[str]:
    """`file:line: name` of every skipping call or decorator under FOLDER but the helper."""
    found = []
    for path in sorted(folder.rglob("*.py")):
        if path == HELPER:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            name = (node.attr if isinstance(node, ast.Attribute) else
                    node.id if isinstance(node, ast.Name) else
                    node.name if isinstance(node, ast.alias) else None)
            if name in SKIPPERS:
                found.append(f"{path.relative_to(folder.parent)}:{getattr(node, 'lineno', '?')}: {name}")
    return found


def _helper_names() -> set[str]:
    tree = ast.parse(HELPER.read_text())
    names = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    return names | {target.id for node in tree.body if isinstance(node, ast.Assign)
                    for target in node.targets if isinstance(target, ast.Name)}


def _reads_the_variable(node: ast.AST) -> bool:
    """os.environ["XARCH_REQUIRE_TOOLS"], os.environ.get(...), os.getenv(...)."""
    key: ast.expr | None
    if isinstance(node, ast.Subscript):
        key = node.slice
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
        key = node.args[0] if node.func.attr in ("get", "getenv", "pop") else None
    else:
        return False
    return isinstance(key, ast.Constant) and key.value == "XARCH_REQUIRE_TOOLS"


def copies_of_the_rule(folder: Path) -> list[str]:
    """`file:line: what` of every place under FOLDER but the helper that restates it."""
    helper_names = _helper_names()
    found = []
    for path in sorted(folder.rglob("*.py")):
        if path == HELPER:
            continue
        where = path.relative_to(folder.parent)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if _reads_the_variable(node):
                found.append(f"{where}:{getattr(node, 'lineno', '?')}: reads XARCH_REQUIRE_TOOLS")
            if not isinstance(node, ast.ImportFrom):
                continue
            for alias in node.names:
                if alias.name not in helper_names or not (node.module or "").startswith("tests"):
                    continue  # (xarch.verify.rebuild has a not_applicable of its own)
                if node.module != "tests.support.needs":
                    found.append(f"{where}:{node.lineno}: {alias.name} from {node.module}")
                elif alias.asname not in (None, alias.name):
                    found.append(f"{where}:{node.lineno}: {alias.name} as {alias.asname}")
    return sorted(found)


def test_no_test_skips_outside_tests_support_needs() -> None:
    assert skips_outside_the_helper(TESTS) == []


def test_the_rule_is_written_only_in_tests_support_needs() -> None:
    assert copies_of_the_rule(TESTS) == []


def test_the_scan_finds_each_copy_of_the_rule(tmp_path: Path) -> None:
    """The scan is not blind: a variable read, a re-export and an alias are each reported."""
    folder = tmp_path / "tests"
    folder.mkdir()
    (folder / "conftest.py").write_text(
        "import os\nfrom tests.support.needs import missing as unavailable, need_tool\n"
        "STRICT = os.environ.get('XARCH_REQUIRE_TOOLS') == '1'\n"
        "ALSO = os.environ['XARCH_REQUIRE_TOOLS']\n"
    )
    (folder / "test_x.py").write_text("from tests.conftest import need_tool\nfrom os import getenv\n")
    assert copies_of_the_rule(folder) == [
        "tests/conftest.py:2: missing as unavailable",
        "tests/conftest.py:3: reads XARCH_REQUIRE_TOOLS",
        "tests/conftest.py:4: reads XARCH_REQUIRE_TOOLS",
        "tests/test_x.py:1: need_tool from tests.conftest",
    ]


def test_the_scan_finds_each_kind_of_skip(tmp_path: Path) -> None:
    """The scan is not blind: each way to skip in a test file is reported."""
    folder = tmp_path / "tests"
    folder.mkdir()
    (folder / "test_x.py").write_text(
        "import pytest\nfrom pytest import skip\n"
        "@pytest.mark.skipif(True, reason='x')\ndef test_a():\n    pytest.skip('no tool')\n"
        "def test_b():\n    pytest.importorskip('nothing')\n    skip('x')\n"
    )
    kinds = [line.rsplit(": ", 1)[1] for line in skips_outside_the_helper(folder)]
    assert sorted(kinds) == ["importorskip", "skip", "skip", "skip", "skipif"]


def test_a_missing_part_fails_under_require_tools(tmp_path: Path) -> None:
    """The helper's two kinds, run by a real pytest: missing() fails in CI, not_applicable() skips."""
    (tmp_path / "test_kinds.py").write_text(
        "from tests.support.needs import missing, need_tool, not_applicable\n"
        "def test_missing():\n    missing('no such part')\n"
        "def test_tool():\n    need_tool('xarch-no-such-tool')\n"
        "def test_host():\n    not_applicable('needs an arm64 host')\n"
    )
    root = TESTS.parent
    outcomes = {}
    for require in ("0", "1"):
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", "-c", "/dev/null",
             "--rootdir", str(tmp_path), str(tmp_path / "test_kinds.py")],
            capture_output=True, text=True, timeout=120, check=False, cwd=root,
            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root), "XARCH_REQUIRE_TOOLS": require},
        )
        outcomes[require] = dict(re.findall(r"::(test_\w+) (PASSED|FAILED|SKIPPED)", result.stdout))
    skipped, failed = "SKIPPED", "FAILED"
    assert outcomes["0"] == {"test_missing": skipped, "test_tool": skipped, "test_host": skipped}, outcomes
    assert outcomes["1"] == {"test_missing": failed, "test_tool": failed, "test_host": skipped}, outcomes
