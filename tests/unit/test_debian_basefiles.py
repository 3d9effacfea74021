"""base-files' postinst as xarch applies it (xarch/sources/debian/basefiles.py) and the default
files other postinsts copy into /etc, on a Tree made here (no archive needed)."""

from __future__ import annotations

from tests.support.trees import entry_at
from xarch.oci.tree import Entry, Tree
from xarch.sources.debian.basefiles import DEFAULTS, base_files, copy_defaults

EPOCH = 1_700_000_000


def shipped() -> Tree:
    """What base-files' and a package's data put in the tree before the postinst runs."""
    tree = Tree()
    for path, data in ((f"{DEFAULTS}/dot.profile", b"# profile\n"), (f"{DEFAULTS}/motd", b"motd\n"),
                       (f"{DEFAULTS}/info.dir", b"info\n"), ("etc/dpkg/origins/debian", b"Vendor: Debian\n"),
                       ("etc/group", b"root:x:0:\nmail:x:8:\nutmp:x:43:\n"),
                       ("var/run/app.pid", b"1\n"), ("etc/motd", b"already here\n"),
                       ("var/log/wtmp", b"kept")):
        tree.add_parents(path)
        tree.add(Entry(path, "file", 0o600 if "dot." in path else 0o644, mtime=1, data=data))
    tree.add_parents("usr/share/info/x")
    return tree


def test_the_postinst_effects() -> None:
    tree = shipped()
    made = base_files(tree, EPOCH)
    profile = entry_at(tree, "root/.profile")
    # cp -p keeps the mode; a file already there is never replaced.
    assert (profile.read(), profile.mode, profile.mtime) == (b"# profile\n", 0o600, EPOCH)
    assert entry_at(tree, "etc/motd").read() == b"already here\n" and "/etc/motd" not in made
    assert "root/.bashrc" not in tree  # no default shipped: nothing copied
    mail = entry_at(tree, "var/mail")
    assert (mail.type, mail.mode, mail.gid) == ("dir", 0o2775, 8)
    assert entry_at(tree, "run/lock").mode == 0o1777
    assert entry_at(tree, "var/spool/mail").linkname == "../mail"
    assert entry_at(tree, "etc/dpkg/origins/default").linkname == "debian"
    assert entry_at(tree, "usr/local/man").linkname == "share/man"
    assert entry_at(tree, "usr/share/info/dir").read() == b"info\n"
    for path, mode, data in (("var/log/wtmp", 0o664, b"kept"), ("var/log/btmp", 0o660, b""),
                             ("var/log/lastlog", 0o664, b"")):
        log = entry_at(tree, path)
        assert (log.mode, log.gid, log.read()) == (mode, 43, data), path


def test_var_run_becomes_a_link_and_what_was_below_it_moves() -> None:
    tree = shipped()
    base_files(tree, EPOCH)
    assert entry_at(tree, "var/run").type == "symlink" and entry_at(tree, "var/run").linkname == "/run"
    assert entry_at(tree, "run/app.pid").read() == b"1\n"
    assert "var/run/app.pid" not in tree
    assert entry_at(tree, "var/lock").linkname == "/run/lock"


def test_a_second_run_makes_no_other_tree() -> None:
    tree = shipped()
    base_files(tree, EPOCH)
    once = {path: (e.type, e.mode, e.uid, e.gid, e.linkname, e.read() if e.type == "file" else None)
            for path, e in tree.entries.items()}
    base_files(tree, EPOCH)
    assert {path: (e.type, e.mode, e.uid, e.gid, e.linkname, e.read() if e.type == "file" else None)
            for path, e in tree.entries.items()} == once


def test_defaults_are_copied_only_for_installed_packages_and_only_when_missing() -> None:
    tree = Tree()
    for path in ("usr/share/libc-bin/nsswitch.conf", "usr/share/readline/inputrc"):
        tree.add_parents(path)
        tree.add(Entry(path, "file", 0o644, mtime=1, data=path.encode()))
    assert copy_defaults(tree, {"libc-bin", "bash"}, EPOCH) == ["/etc/nsswitch.conf"]
    assert entry_at(tree, "etc/nsswitch.conf").read() == b"usr/share/libc-bin/nsswitch.conf"
    assert "etc/inputrc" not in tree  # readline-common is not installed
    assert copy_defaults(tree, {"libc-bin"}, EPOCH) == []  # already there
