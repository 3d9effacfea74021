"""Shared test set-up: the fixture modules, registered once here, and the markers each folder gives.

tests/unit/         fast; no dockerd, registry server, other server, QEMU or network. Marked `unit`.
tests/integration/  everything else (real daemons, servers, emulation, long builds). Marked `integration`.

A test names the fixtures it uses as arguments; no test module imports a fixture. Helpers (classes,
functions) are imported from tests/support/ as usual. Every skip goes through tests/support/needs.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = [
    "tests.support.debian_fixtures",
    "tests.support.dockerd",
    "tests.support.fresh_archive",
    "tests.support.hello",
    "tests.support.referrers_server",
    "tests.support.registry",
    "tests.support.rootfs",
    "tests.support.stages",
]

TESTS = Path(__file__).resolve().parent
FOLDERS = ("unit", "integration")
# A unit test never needs these (tox's tests-py310 runs tests/unit alone, under the oldest CPython).
NOT_UNIT = ("docker", "qemu", "slow")


def folder_problem(relative: Path, markers: set[str]) -> str | None:
    """Why a test at RELATIVE (to tests/) with MARKERS is in the wrong place, or None."""
    folder = relative.parts[0] if len(relative.parts) > 1 else ""
    if folder not in FOLDERS:
        return f"tests/{relative}: a test file belongs in tests/unit/ or tests/integration/"
    wrong = sorted(markers & set(NOT_UNIT)) if folder == "unit" else []
    if wrong:
        return f"tests/{relative}: marked {', '.join(wrong)}: move it to tests/integration/"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test `unit` or `integration` by its folder; refuse one in the wrong place."""
    problems = []
    for item in items:
        try:
            relative = item.path.resolve().relative_to(TESTS)
        except ValueError:
            continue  # a test outside tests/ (tests/unit/test_skips.py runs pytest on a tmp folder)
        problem = folder_problem(relative, {mark.name for mark in item.iter_markers()})
        if problem:
            problems.append(problem)
        else:
            item.add_marker(relative.parts[0])
    if problems:
        raise pytest.UsageError("\n".join(sorted(set(problems))))
