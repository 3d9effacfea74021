"""Pure-Python .deb reading and safe unpacking into an image tree."""

from __future__ import annotations

import bz2
import lzma
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.support.aptrepo import FixturePackage, ar_archive, build_deb, raw_deb
from tests.support.needs import need_tool
from tests.support.trees import entry_at
from xarch.oci.tree import Entry, Tree
from xarch.sources.debian.deb import PathFilter, read_ar, read_deb, unpack
from xarch.sources.debian.errors import UnpackError


def member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "",
           mode: int = 0o644) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.mode = mode
    return info


def hostile(tmp_path: Path, *members: tarfile.TarInfo, contents: dict[str, bytes] | None = None) -> Path:
    return raw_deb(tmp_path / "hostile.deb", "hostile", list(members), contents or {})


@pytest.mark.parametrize("compression", ["xz", "zstd", "gzip", "none"])
def test_dpkg_deb_built_packages_in_every_compression(tmp_path: Path, compression: str) -> None:
    need_tool("dpkg-deb")
    pkg = FixturePackage("demo", "1.0", files={"usr/bin/demo": b"demo\n", "etc/demo.conf": b"x=1\n"},
                         symlinks={"usr/bin/demo2": "demo"}, scripts={"postinst": "#!/bin/sh\nexit 1\n"})
    deb_path = build_deb(pkg, tmp_path / "roots", tmp_path / "out")
    if compression != "xz":  # rebuild the same tree with another compressor
        deb_path.unlink()
        subprocess.run(["dpkg-deb", "--root-owner-group", f"-Z{compression}", "--build",
                        str(tmp_path / "roots" / "demo_1.0_all"), str(deb_path)],
                       check=True, capture_output=True)
    deb = read_deb(deb_path)
    assert deb.control["Package"] == "demo" and deb.scripts == ["postinst"]
    tree = Tree()
    unpacked = unpack(deb, tree)
    assert entry_at(tree, "usr/bin/demo").data == b"demo\n" and entry_at(tree, "usr/bin/demo").mode == 0o755
    assert entry_at(tree, "usr/bin/demo2").linkname == "demo"
    assert "usr/bin/demo" in unpacked.paths


def test_ar_reader_refuses_garbage() -> None:
    with pytest.raises(UnpackError, match="is not a .deb"):
        read_ar(b"PK\x03\x04", "x.deb")
    with pytest.raises(UnpackError, match="corrupt ar member header"):
        read_ar(b"!<arch>\n" + b"x" * 70, "x.deb")
    with pytest.raises(UnpackError, match="truncated"):
        read_ar(b"!<arch>\n" + f"{'a':<16}{0:<12}{0:<6}{0:<6}{0:<8}{100:<10}`\n".encode() + b"abc", "x.deb")


def test_bz2_data_member(tmp_path: Path) -> None:
    # raw_deb writes data.tar.xz; rewrite it as data.tar.bz2 through the ar reader.
    path = hostile(tmp_path, member("./usr/share/doc/x"), contents={"./usr/share/doc/x": b"bz\n"})
    members = read_ar(path.read_bytes(), "x")
    data = bz2.compress(lzma.decompress(members["data.tar.xz"]))
    path.write_bytes(ar_archive([("debian-binary", b"2.0\n"), ("control.tar.gz", members["control.tar.gz"]),
                          ("data.tar.bz2", data)]))
    tree = Tree()
    unpack(read_deb(path), tree)
    assert entry_at(tree, "usr/share/doc/x").data == b"bz\n"


@pytest.mark.parametrize("members, message", [
    ([member("./../../etc/evil")], r"member './\.\./\.\./etc/evil' escapes the image root; refused"),
    ([member("./usr/x"), member("./usr/y", tarfile.LNKTYPE, "../../etc/shadow")],
     r"hard link to '\.\./\.\./etc/shadow' escapes the image root; refused"),
    ([member("./dev/sda", tarfile.BLKTYPE)],
     r"dev/sda is a device node; packages may not ship those \(refused\)"),
    ([member("./dev/null", tarfile.CHRTYPE)], r"dev/null is a device node"),
    ([member("./run/fifo", tarfile.FIFOTYPE)], r"run/fifo is a FIFO"),
    ([member("./usr/escape", tarfile.SYMTYPE, "../../.."), member("./usr/escape/etc/passwd")],
     r"usr/escape/etc/passwd: a symlink on the way leads outside the image root; refused"),
    ([member("./usr/abs", tarfile.SYMTYPE, "/../.."), member("./usr/abs/passwd")],
     r"usr/abs/passwd: a symlink on the way leads outside the image root; refused"),
    ([member("./usr/y", tarfile.LNKTYPE, "./usr/never-shipped")], r"which the package did not ship first"),
    ([member("./etc/file"), member("./etc/file/below")], r"etc/file is a file in the image, not a directory"),
    ([member("./a", tarfile.SYMTYPE, "b"), member("./b", tarfile.SYMTYPE, "a"), member("./a/x")],
     r"too many levels of symlinks"),
])
def test_unsafe_members_are_refused(tmp_path: Path, members: list[tarfile.TarInfo], message: str) -> None:
    deb = read_deb(hostile(tmp_path, *members))
    with pytest.raises(UnpackError, match=message) as caught:
        unpack(deb, Tree())
    assert "\n" not in str(caught.value)


def test_symlinks_are_stored_not_followed(tmp_path: Path) -> None:
    deb = read_deb(hostile(tmp_path, member("./etc/evil", tarfile.SYMTYPE, "/etc/shadow"),
                           member("./usr/up", tarfile.SYMTYPE, "../../../../root")))
    tree = Tree()
    unpack(deb, tree)
    evil = entry_at(tree, "etc/evil")
    assert evil.type == "symlink" and evil.linkname == "/etc/shadow"
    assert entry_at(tree, "usr/up").linkname == "../../../../root"


def test_relative_directory_links_inside_the_root_are_followed(tmp_path: Path) -> None:
    tree = Tree()
    tree.add(Entry("usr/share/doc/real", "dir", 0o755))
    tree.add(Entry("usr/share/doc/alias", "symlink", 0o777, linkname="real"))
    deb = read_deb(hostile(tmp_path, member("./usr/share/doc/alias/README"),
                           member("./lib64/ld.so", mode=0o755),
                           contents={"./usr/share/doc/alias/README": b"r\n", "./lib64/ld.so": b"ld\n"}))
    unpack(deb, tree)
    assert entry_at(tree, "usr/share/doc/real/README").data == b"r\n"
    assert entry_at(tree, "lib64").linkname == "usr/lib64"
    assert entry_at(tree, "usr/lib64/ld.so").data == b"ld\n"


def test_absolute_links_resolve_inside_the_image(tmp_path: Path) -> None:
    tree = Tree()
    tree.add(Entry("run", "dir", 0o755))
    tree.add(Entry("var/run", "symlink", 0o777, linkname="/run"))
    deb = read_deb(hostile(tmp_path, member("./var/run", tarfile.DIRTYPE, mode=0o755),
                           member("./var/run/app/pid"), contents={"./var/run/app/pid": b"1\n"}))
    unpack(deb, tree)
    assert entry_at(tree, "var/run").type == "symlink"  # a directory does not replace the link
    assert entry_at(tree, "run/app/pid").data == b"1\n"


def test_hard_links_point_at_the_placed_file(tmp_path: Path) -> None:
    deb = read_deb(hostile(tmp_path, member("./bin/perl", mode=0o755),
                           member("./bin/perl5", tarfile.LNKTYPE, "./bin/perl"),
                           contents={"./bin/perl": b"p\n"}))
    tree = Tree()
    unpack(deb, tree)
    link = entry_at(tree, "usr/bin/perl5")
    assert link.type == "hardlink" and link.linkname == "usr/bin/perl"


def test_directory_over_file_is_refused(tmp_path: Path) -> None:
    tree = Tree()
    tree.add(Entry("etc/thing", "file", 0o644, data=b"x"))
    deb = read_deb(hostile(tmp_path, member("./etc/thing", tarfile.DIRTYPE, mode=0o755)))
    with pytest.raises(UnpackError, match=r"the image has a file at etc/thing, the package a directory"):
        unpack(deb, tree)


def test_path_filter_like_dpkg_path_exclude(tmp_path: Path) -> None:
    deb = read_deb(hostile(tmp_path, member("./usr/share/doc/pkg/README"),
                           member("./usr/share/doc/pkg/copyright"),
                           member("./usr/share/man/man1/x.1.gz"), member("./usr/bin/x", mode=0o755),
                           contents={"./usr/share/doc/pkg/copyright": b"(c)\n", "./usr/bin/x": b"x\n"}))
    keep = PathFilter(exclude=("/usr/share/doc/*", "/usr/share/man/*"),
                      include=("/usr/share/doc/*/copyright",))
    tree = Tree()
    unpacked = unpack(deb, tree, path_filter=keep)
    assert sorted(e.path for e in tree if e.type == "file") == ["usr/bin/x", "usr/share/doc/pkg/copyright"]
    assert unpacked.paths == ["usr/share/doc/pkg/copyright", "usr/bin/x"]


def test_path_filter_and_hard_links(tmp_path: Path) -> None:
    deb = read_deb(hostile(tmp_path, member("./usr/share/doc/a"), member("./usr/bin/b", tarfile.LNKTYPE,
                                                                          "./usr/share/doc/a")))
    with pytest.raises(UnpackError, match="which the path filter drops; include both or neither"):
        unpack(deb, Tree(), path_filter=PathFilter(exclude=("/usr/share/doc/*",)))
