"""Every skip goes through tests/support/needs.py: XARCH_REQUIRE_TOOLS=1 fails every missing part.

Two tests once called pytest.skip for a missing keyring or binfmt entry even in CI, so a fresh
machine without them looked green. This closes the class: no skip outside the helper.
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


def test_no_test_skips_outside_tests_support_needs() -> None:
    assert skips_outside_the_helper(TESTS) == []


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
