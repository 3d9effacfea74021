"""The one place a test may skip: a missing real part, or a test that does not apply to this host.

Two kinds, kept apart:

- `missing(why)` (and `need_tool`, `need_root`, `need_file`): a tool, service or capability that
  scripts/setup-host provides is absent. The test skips on a developer's machine, and FAILS under
  XARCH_REQUIRE_TOOLS=1 (CI, scripts/test): a green run must not hide a missing install step.
- `not_applicable(why)`: the test cannot mean anything on this host whatever is installed (e.g. a
  test of emulating arm64 on an arm64 host). It always skips. Keep these rare.

tests/unit/test_skips.py fails when any test skips (pytest.skip, skipif, importorskip) outside this
module, so every skip is one of the two kinds above.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import NoReturn

import pytest

# In CI (XARCH_REQUIRE_TOOLS=1) a missing real part fails the test instead of skipping it.
REQUIRE_TOOLS = os.environ.get("XARCH_REQUIRE_TOOLS") == "1"


def missing(why: str) -> NoReturn:
    """Skip for a missing tool or capability, or fail under XARCH_REQUIRE_TOOLS=1.

    WHY names what is missing and, where it can, what provides it ("... (scripts/setup-host)").
    """
    if REQUIRE_TOOLS:
        pytest.fail(f"missing under XARCH_REQUIRE_TOOLS=1: {why}")
    pytest.skip(why)


def not_applicable(why: str) -> NoReturn:
    """Skip a test that cannot apply to this host (its architecture, not its set-up). Never a tool."""
    pytest.skip(f"not applicable here: {why}")


def need_tool(name: str) -> str:
    """Path of NAME on PATH; `missing` when it is not there."""
    path = shutil.which(name)
    if path is None:
        missing(f"{name} is not installed (scripts/setup-host installs it)")
    return path


def need_root(why: str) -> None:
    """Go on only as root (CI and the README's set-up run as root); `missing` otherwise."""
    if os.geteuid() != 0:
        missing(f"needs root: {why}")


def need_file(path: str | Path, why: str) -> Path:
    """PATH exists (a keyring, a binfmt_misc entry, a config file); `missing` otherwise."""
    found = Path(path)
    if not found.exists():
        missing(f"{found} does not exist: {why}")
    return found


def need_binfmt(qemu: str) -> None:
    """The kernel hands qemu-QEMU binaries to QEMU (binfmt_misc); `missing` otherwise."""
    need_file(f"/proc/sys/fs/binfmt_misc/qemu-{qemu}",
              f"qemu-{qemu} is not registered with binfmt_misc (scripts/setup-host does it)")


def opt_in(variable: str, why: str) -> None:
    """Go on only when the environment sets VARIABLE=1 (a test that reaches the internet, e.g. the
    real PyPI: never part of CI's hermetic run). Otherwise it always skips, with WHY."""
    if os.environ.get(variable) != "1":
        pytest.skip(f"opt-in: set {variable}=1 to run ({why})")
