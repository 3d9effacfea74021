"""Shared test set-up. Fixtures for real servers live in tests/support/ modules."""

import os
import shutil

import pytest

# In CI (XARCH_REQUIRE_TOOLS=1) a missing real part fails the test instead of skipping it:
# a green run must not hide a missing install step.
REQUIRE_TOOLS = os.environ.get("XARCH_REQUIRE_TOOLS") == "1"


def need_tool(name: str) -> str:
    """Path of NAME on PATH; skip (or fail in CI) when it is missing."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (scripts/setup-host installs it)"
        if REQUIRE_TOOLS:
            pytest.fail(message)
        pytest.skip(message)
    return path
