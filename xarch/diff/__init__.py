"""`xarch diff`: where two images differ, down to the file, and which digests that changes."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from xarch.diff.compare import Difference, DiffResult, compare
from xarch.diff.sources import DiffError, ImageSource, open_source
from xarch.visible import visible

if TYPE_CHECKING:
    from xarch.registry.client import Settings

__all__ = ["DiffError", "DiffResult", "Difference", "ImageSource", "compare", "diff_paths", "open_source"]


def diff_paths(a: str, b: str, platform: str | None = None, settings: Settings | None = None,
               progress: Callable[[str], None] = lambda message: None) -> DiffResult:
    """Open A and B (paths, `kind:PATH` or registry references), compare them, close them.

    SETTINGS reach the registries of registry references (default: xarch.registry.client.Settings()).
    Raises DiffError (exit 2, or the registry's 4) when either side cannot be read.
    """
    with open_source(a, settings) as source_a, open_source(b, settings) as source_b:
        # which kind each argument was taken for; one line, however A and B are named
        progress(visible(f"A: {source_a.kind} {a}; B: {source_b.kind} {b}"))
        return compare(source_a, source_b, platform, progress)
