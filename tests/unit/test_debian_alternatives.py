"""update-alternatives as xarch writes it (xarch/sources/debian/alternatives.py): the call shapes
scripts use, the best choice by priority then path, slaves only where their path exists, the admin
file dpkg writes, and a real file never replaced by a link."""

from __future__ import annotations

import pytest

from tests.support.trees import entry_at
from xarch.oci.tree import Entry, Tree
from xarch.sources.debian.alternatives import Alternatives, CallError, Install, Remove, parse_call


def tree_with(*paths: str) -> Tree:
    tree = Tree()
    for path in paths:
        tree.add_parents(path)
        tree.add(Entry(path, "file", 0o755, data=path.encode()))
    return tree


def test_call_shapes() -> None:
    install = parse_call(("update-alternatives", "--quiet", "--install", "/usr/bin/awk", "awk",
                          "/usr/bin/mawk", "5", "--slave", "/usr/share/man/man1/awk.1.gz", "awk.1.gz",
                          "/usr/share/man/man1/mawk.1.gz"))
    assert isinstance(install, Install)
    remove = parse_call(("update-alternatives", "--remove", "awk", "/usr/bin/mawk"))
    assert isinstance(remove, Remove)
    assert parse_call(("update-alternatives", "--display", "awk")) is None  # changes nothing
    with pytest.raises(CallError):
        parse_call(("update-alternatives", "--install", "/usr/bin/awk", "awk", "/usr/bin/mawk", "high"))


def install(alternatives: Alternatives, path: str, priority: str, *slave: str) -> None:
    words = ("update-alternatives", "--install", "/usr/bin/awk", "awk", path, priority)
    call = parse_call(words + (("--slave", *slave) if slave else ()))
    assert isinstance(call, Install)
    alternatives.install(call, "pkg")


def test_the_highest_priority_wins_and_slaves_need_their_path() -> None:
    tree = tree_with("usr/bin/mawk", "usr/bin/gawk", "usr/bin/nawk")
    alternatives = Alternatives()
    install(alternatives, "/usr/bin/mawk", "5", "/usr/share/man/man1/awk.1.gz", "awk.1.gz",
            "/usr/share/man/man1/mawk.1.gz")
    install(alternatives, "/usr/bin/gawk", "10", "/usr/share/man/man1/awk.1.gz", "awk.1.gz",
            "/usr/share/man/man1/gawk.1.gz")
    install(alternatives, "/usr/bin/nawk", "10")
    alternatives.apply(tree, 0)
    assert entry_at(tree, "usr/bin/awk").linkname == "/etc/alternatives/awk"
    assert entry_at(tree, "etc/alternatives/awk").linkname == "/usr/bin/gawk"  # 10, and first by path
    assert "usr/share/man/man1/awk.1.gz" not in tree  # gawk's man page is not in the tree: no slave link
    admin = entry_at(tree, "var/lib/dpkg/alternatives/awk").read().decode()
    assert admin.startswith("auto\n/usr/bin/awk\nawk.1.gz\n/usr/share/man/man1/awk.1.gz\n\n")
    assert "/usr/bin/gawk\n10\n/usr/share/man/man1/gawk.1.gz\n" in admin and admin.endswith("\n\n")


def test_a_real_file_at_the_link_is_left_alone() -> None:
    tree = tree_with("usr/bin/mawk", "usr/bin/awk")
    alternatives = Alternatives()
    install(alternatives, "/usr/bin/mawk", "5")
    alternatives.apply(tree, 0)
    assert entry_at(tree, "usr/bin/awk").type == "file"
    assert entry_at(tree, "etc/alternatives/awk").linkname == "/usr/bin/mawk"
