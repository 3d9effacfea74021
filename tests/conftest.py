"""Shared test set-up. Fixtures for real servers live in tests/support/ modules."""

# need_tool and REQUIRE_TOOLS live in tests/support/needs.py, the one place a test may skip;
# re-exported here for the modules that import them from conftest.
from tests.support.needs import REQUIRE_TOOLS, need_tool

__all__ = ["REQUIRE_TOOLS", "need_tool"]
