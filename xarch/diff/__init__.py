"""`xarch diff`: where two images differ, down to the file, and which digests that changes."""

from collections.abc import Callable

from xarch.diff.compare import Difference, DiffResult, compare
from xarch.diff.sources import DiffError, ImageSource, open_source

__all__ = ["DiffError", "DiffResult", "Difference", "ImageSource", "compare", "diff_paths", "open_source"]


def diff_paths(a: str, b: str, platform: str | None = None, insecure: bool = False,
               progress: Callable[[str], None] = lambda message: None) -> DiffResult:
    """Open A and B (paths, `kind:PATH` or registry references), compare them, close them."""
    with open_source(a, insecure) as source_a, open_source(b, insecure) as source_b:
        progress(f"A: {source_a.kind} {a}; B: {source_b.kind} {b}")  # which kind each argument was taken for
        return compare(source_a, source_b, platform, progress)
