"""From the paths a traced program used to the entries its image keeps (xarch/trace/closure.py):
lookups walk folders and symlinks as the kernel does, a script keeps its interpreter, the config
keeps its entrypoint, account files and workdir, and everything else is dropped."""

from __future__ import annotations

from xarch.oci.tree import Entry, Tree
from xarch.trace.closure import MAX_HOPS, config_needs, kept_paths, minimize, resolve


def tree_of(*entries: Entry) -> Tree:
    tree = Tree()
    for entry in entries:
        tree.add_parents(entry.path)
        tree.add(entry)
    return tree


def sample() -> Tree:
    return tree_of(
        Entry("usr/bin/tool", "file", 0o755, data=b"#!/bin/sh\necho hi\n"),
        Entry("usr/bin/busybox", "file", 0o755, data=b"\x7fELF not really"),
        Entry("bin", "symlink", 0o777, linkname="usr/bin"),
        Entry("usr/bin/sh", "symlink", 0o777, linkname="busybox"),
        Entry("etc/app.conf", "file", 0o644, data=b"x"),
        Entry("etc/conf", "symlink", 0o777, linkname="/etc/app.conf"),
        Entry("etc/passwd", "file", 0o644, data=b"root:x:0:0::/:/bin/sh\n"),
        Entry("etc/group", "file", 0o644, data=b"root:x:0:\n"),
        Entry("usr/share/doc/big", "file", 0o644, data=b"unused"),
        Entry("srv", "dir", 0o755),
    )


def test_resolve_keeps_every_folder_and_link_on_the_way() -> None:
    kept: set[str] = set()
    assert resolve(sample(), "/etc/./conf", kept) == "etc/app.conf"
    assert kept == {"etc", "etc/conf", "etc/app.conf"}
    kept = set()
    # ".." after a symlink leaves where the link led (/usr), as the kernel's lookup does.
    assert resolve(sample(), "/bin/../bin/sh", kept) == "usr/bin/busybox"
    assert kept == {"bin", "usr", "usr/bin", "usr/bin/sh", "usr/bin/busybox"}
    assert resolve(sample(), "/bin/../etc/conf", set()) is None  # /usr/etc: not there
    assert resolve(sample(), "/etc/missing", set()) is None


def test_a_symlink_loop_gives_up_after_the_kernels_hop_limit() -> None:
    tree = tree_of(Entry("a", "symlink", 0o777, linkname="b"), Entry("b", "symlink", 0o777, linkname="a"))
    assert MAX_HOPS == 40
    assert resolve(tree, "/a", set()) is None


def test_config_needs_search_the_path_for_a_relative_entrypoint() -> None:
    needs = config_needs(["tool", "--flag"], "app", "/srv", "/usr/local/bin:/usr/bin")
    assert needs.paths == ("/usr/local/bin/tool", "/usr/bin/tool", "/etc/passwd", "/etc/group", "/srv")
    assert config_needs([], None, None, "/bin").paths == ()


def test_kept_paths_follow_scripts_to_their_interpreter_and_keep_globs() -> None:
    tree = sample()
    needs = config_needs(["/usr/bin/tool"], "root", "/srv", "/bin")
    kept = kept_paths(tree, ["/etc/conf"], ["/usr/bin/tool"], ["usr/share/doc/**"], needs)
    # tool is a script: /bin/sh (a link to a link) and busybox stay.
    assert {"usr/bin/tool", "bin", "usr/bin/sh", "usr/bin/busybox"} <= kept
    assert {"etc/conf", "etc/app.conf", "etc/passwd", "etc/group", "srv", "usr/share/doc/big"} <= kept
    assert {"usr", "usr/share", "usr/share/doc"} <= kept  # folders above what is kept


def test_minimize_drops_the_rest_in_path_order() -> None:
    tree = sample()
    kept = kept_paths(tree, [], ["/usr/bin/busybox"], [], config_needs([], None, None, "/bin"))
    dropped = minimize(tree, kept)
    assert sorted(entry.path for entry in tree) == ["usr", "usr/bin", "usr/bin/busybox"]
    assert [entry.path for entry in dropped] == sorted(entry.path for entry in dropped)
    assert "etc/passwd" in {entry.path for entry in dropped}
