"""What xarch keeps of a file besides bytes and mode (xarch/run/fsmeta.py): security.capability as
setcap writes it (revision 2), no other extended attribute, and hard links within one walk."""

from __future__ import annotations

import os
import struct
import subprocess
from pathlib import Path

from tests.support.needs import missing, need_root, need_tool
from xarch.run.fsmeta import HardLinks, kept_xattrs
from xarch.sources.debian.capabilities import XATTR

CAP_NET_RAW = 13


def set_xattr(path: Path, name: str, value: bytes) -> None:
    try:
        os.setxattr(path, name, value)
    except OSError as error:
        missing(f"cannot set {name} on {path.parent} here: {error}")


def test_a_plain_file_keeps_nothing(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_text("x")
    assert kept_xattrs(path) == ()


def test_a_user_attribute_of_the_build_host_is_never_taken(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_text("x")
    set_xattr(path, "user.desktop-tag", b"mine")
    assert kept_xattrs(path) == ()


def test_setcaps_capability_is_kept_as_revision_2(tmp_path: Path) -> None:
    need_root("setting a file capability needs CAP_SETFCAP")
    path = tmp_path / "ping"
    path.write_text("x")
    subprocess.run([need_tool("setcap"), "cap_net_raw+ep", str(path)], check=True)
    ((name, value),) = kept_xattrs(path)
    magic, permitted, inheritable = struct.unpack_from("<III", value)
    assert name == XATTR and len(value) == 20
    assert (magic >> 24, magic & 1) == (2, 1)  # revision 2, effective
    assert (permitted, inheritable) == (1 << CAP_NET_RAW, 0)


def test_a_revision_3_capability_loses_its_namespace_root(tmp_path: Path) -> None:
    """A capability written in a user namespace (revision 3) names that namespace's root uid on the
    host: meaningless in an image, so it is kept as revision 2 with the same sets."""
    need_root("writing security.capability needs CAP_SETFCAP")
    path = tmp_path / "tool"
    path.write_text("x")
    set_xattr(path, XATTR, struct.pack("<IIIIII", 0x03000001, 1 << CAP_NET_RAW, 0, 0, 0, 100_000))
    assert len(os.getxattr(path, XATTR)) == 24  # the kernel kept revision 3
    ((_name, value),) = kept_xattrs(path)
    assert value == struct.pack("<IIIII", 0x02000001, 1 << CAP_NET_RAW, 0, 0, 0)


def test_hard_links_point_at_the_first_path_of_the_walk(tmp_path: Path) -> None:
    first, second, alone = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    first.write_text("same")
    os.link(first, second)
    alone.write_text("alone")
    links = HardLinks()
    assert links.seen(first.stat(), "usr/a") is None
    assert links.seen(second.stat(), "usr/b") == "usr/a"
    assert links.seen(alone.stat(), "usr/c") is None
    assert links.seen(alone.stat(), "usr/c2") is None  # one link only: never a hard link
