"""Entries where a runtime puts them (xarch/build/placement.py): a file below a symlinked folder moves to
where the link leads (hard links follow it), a dangling link moves nothing, and a whiteout name
is refused in one line."""

from __future__ import annotations

import pytest

from xarch.build.placement import settle
from xarch.build.treecheck import BrokenTree
from xarch.oci.tree import Entry, Tree


def tree_of(*entries: Entry) -> Tree:
    tree = Tree()
    for entry in entries:
        tree.add_parents(entry.path)
        tree.add(entry)
    return tree


def test_files_below_a_symlinked_folder_land_where_it_leads() -> None:
    tree = tree_of(Entry("usr/lib", "dir", 0o755), Entry("lib", "symlink", 0o777, linkname="usr/lib"),
                   Entry("lib/libc.so", "file", 0o644, data=b"c"),
                   Entry("opt/link-to-libc", "hardlink", 0o644, linkname="lib/libc.so"))
    assert settle(tree) == [("lib/libc.so", "usr/lib/libc.so")]
    assert "lib/libc.so" not in tree and tree.entries["usr/lib/libc.so"].read() == b"c"
    assert tree.entries["opt/link-to-libc"].linkname == "usr/lib/libc.so"


def test_a_dangling_link_moves_nothing() -> None:
    tree = tree_of(Entry("lib", "symlink", 0o777, linkname="nowhere"),
                   Entry("lib/x", "file", 0o644, data=b""))
    assert settle(tree) == [] and "lib/x" in tree


@pytest.mark.parametrize("name", [".wh.secret", ".wh..wh..opq"])
def test_a_whiteout_name_is_refused(name: str) -> None:
    with pytest.raises(BrokenTree) as caught:
        settle(tree_of(Entry(f"etc/{name}", "file", 0o644, data=b"")))
    assert str(caught.value).startswith(f"/etc/{name}: a name starting with .wh. is a whiteout")
