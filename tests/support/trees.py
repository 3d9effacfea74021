"""Reading a Tree (xarch/oci/tree.py) in tests: an entry the test expects, or a clear failure."""

from __future__ import annotations

from xarch.oci.tree import Entry, Tree


def entry_at(tree: Tree, path: str) -> Entry:
    """TREE's entry at PATH; fails the test (AssertionError naming PATH) when there is none."""
    found = tree.get(path)
    assert found is not None, f"{path} is not in the tree"
    return found
