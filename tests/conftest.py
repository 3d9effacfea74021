"""Shared test set-up: the fixture modules, registered once here, and the markers each folder gives.

tests/unit/         fast; no dockerd, registry server, other server, QEMU or network. Marked `unit`.
tests/integration/  everything else (real daemons, servers, emulation, long builds). Marked `integration`.

A test names the fixtures it uses as arguments; no test module imports a fixture. Helpers (classes,
functions) are imported from tests/support/ as usual. Every skip goes through tests/support/needs.py.
"""

from __future__ import annotations

import os
import shutil
import tempfile
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


def pytest_configure(config: pytest.Config) -> None:
    """Tests that load a recipe in-process (xarch.recipecache keeps it in the cache) get a cache
    of the session's own, unless XARCH_CACHE is set: a test never writes the user's cache."""
    if "XARCH_CACHE" not in os.environ:
        os.environ["XARCH_CACHE"] = tempfile.mkdtemp(prefix="xarch-test-cache-")
        config.stash[_OWN_CACHE] = os.environ["XARCH_CACHE"]


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove the session's own cache (pytest_configure)."""
    own = config.stash.get(_OWN_CACHE, None)
    if own is not None:
        shutil.rmtree(own, ignore_errors=True)
        if os.environ.get("XARCH_CACHE") == own:
            del os.environ["XARCH_CACHE"]


_OWN_CACHE = pytest.StashKey[str]()


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
