"""/etc/ld.so.cache made without running ldconfig, against the real ldconfig.

One image (amd64 and arm64) of libc-bin, libc6, libzstd1, libssl3 and zlib1g-dev (so
development links and libc.so's linker script are in the searched folders) from the
real bookworm archive. Its cache must be byte-identical to what ldconfig itself writes
in the same root: the host's bookworm ldconfig in a chroot for amd64, the image's own
arm64 ldconfig under QEMU for arm64 (the build itself never runs either).
"""

from __future__ import annotations

import random
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.support.e2e import EPOCH, image_files, xarch_ok
from tests.support.needs import need_binfmt, need_root, need_tool
from xarch.oci.tree import Entry, Tree
from xarch.sources.debian.ldconfig import LdconfigUnsupported, cache_bytes, libcmp, libraries, write_cache

KINDS = {tarfile.REGTYPE: "file", tarfile.DIRTYPE: "dir", tarfile.SYMTYPE: "symlink",
         tarfile.LNKTYPE: "hardlink"}
VERSION = {"amd64": "x86-64", "arm64": "AArch64"}


@pytest.fixture(scope="module")
def ld_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    need_tool("gpgv")
    base = tmp_path_factory.mktemp("ldconfig")
    (base / "xarch.yaml").write_text(f"""\
name: ldconfig
platforms: [amd64, arm64]
epoch: {EPOCH}
sources:
  debian:
    suites: [bookworm]
packages: [libc-bin, libc6, libzstd1, libssl3, zlib1g-dev]
""")
    xarch_ok("build", "-f", str(base / "xarch.yaml"), "-o", f"oci:{base / 'out'}", cache=base / "cache")
    return base / "out"


def _tree(out: Path, arch: str, shuffle: int | None = None) -> Tree:
    files = list(image_files(out, arch).items())
    if shuffle is not None:
        random.Random(shuffle).shuffle(files)
    tree = Tree()
    for path, member in files:
        if path and member.type in KINDS:
            tree.add(Entry(path, KINDS[member.type], member.mode, member.uid, member.gid, EPOCH,  # type: ignore[arg-type]
                           member.linkname, member.data if member.type == tarfile.REGTYPE else None))
    return tree


def _extract(out: Path, arch: str, root: Path) -> None:
    """The image as a folder (every layer in order): ldconfig chroots into it."""
    root.mkdir()
    for path, member in sorted(image_files(out, arch).items()):
        target = root / path
        if member.type == tarfile.DIRTYPE:
            target.mkdir(parents=True, exist_ok=True)
        elif member.type == tarfile.SYMTYPE:
            target.symlink_to(member.linkname)
        elif member.type == tarfile.LNKTYPE:
            target.hardlink_to(root / member.linkname)
        elif member.type == tarfile.REGTYPE:
            target.write_bytes(member.data)
            target.chmod(member.mode)


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["amd64", pytest.param("arm64", marks=pytest.mark.qemu)])
def test_the_cache_is_the_one_ldconfig_writes(ld_image: Path, arch: str, tmp_path: Path) -> None:
    need_root("ldconfig chroots into the root it updates")
    ldconfig = need_tool("ldconfig")
    ours = image_files(ld_image, arch)["etc/ld.so.cache"]
    assert (ours.mode, ours.uid, ours.gid) == (0o644, 0, 0)
    root = tmp_path / "root"
    _extract(ld_image, arch, root)
    (root / "etc/ld.so.cache").unlink()
    if arch == "amd64":
        subprocess.run([ldconfig, "-r", str(root)], check=True, timeout=120)
    else:
        need_binfmt("aarch64")
        subprocess.run([need_tool("chroot"), str(root), "/sbin/ldconfig"], check=True, timeout=300)
    assert (root / "etc/ld.so.cache").read_bytes() == ours.data
    # The host's ldconfig reads it: every soname the loader needs, with the target's flags.
    listing = subprocess.run([ldconfig, "-p", "-C", str(root / "etc/ld.so.cache")], check=True,
                             capture_output=True, text=True).stdout
    triplet = {"amd64": "x86_64-linux-gnu", "arm64": "aarch64-linux-gnu"}[arch]
    assert f"\tlibzstd.so.1 (libc6,{VERSION[arch]}) => /lib/{triplet}/libzstd.so.1\n" in listing
    assert f"\tlibz.so (libc6,{VERSION[arch]}) => /lib/{triplet}/libz.so\n" in listing  # a dev link


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["amd64", "arm64"])
def test_the_cache_does_not_depend_on_the_order_files_arrive(ld_image: Path, arch: str) -> None:
    made = image_files(ld_image, arch)["etc/ld.so.cache"].data
    for seed in (1, 2):
        tree = _tree(ld_image, arch, shuffle=seed)
        version = made.rsplit(b"GLIBC ", 1)[1].split(b")", 1)[0].decode()
        write_cache(tree, arch, version, EPOCH)
        assert tree.entries["etc/ld.so.cache"].data == made


def test_libcmp_compares_digit_runs_as_numbers() -> None:
    assert libcmp(b"libfoo.so.10", b"libfoo.so.9") > 0
    assert libcmp(b"libfoo.so.1", b"libfoo.so.1") == 0
    assert libcmp(b"libfoo.so", b"libfoo.so.1") < 0
    assert libcmp(b"liba1", b"libab") > 0  # a digit sorts after any other byte


def test_tail_merged_strings_and_layout() -> None:
    tree = Tree()
    elf = _elf_with_soname(b"libx.so.1")
    tree.add(Entry("etc/ld.so.conf", "file", 0o644, data=b"# comment\n/opt/l//\n"))
    tree.add_parents("opt/l/libx.so.1.0")
    tree.add(Entry("opt/l/libx.so.1.0", "file", 0o644, data=elf))
    found, made = libraries(tree, "amd64")
    assert [(lib.soname, lib.path) for lib in found] == [("libx.so.1", "/opt/l/libx.so.1")]
    assert made == ["/opt/l/libx.so.1"] and tree.entries["opt/l/libx.so.1"].linkname == "libx.so.1.0"
    data = cache_bytes(found, "G")
    assert data[:20] == b"glibc-ld.so.cache1.1"
    # "libx.so.1" is the tail of "/opt/l/libx.so.1": one string, stored once.
    assert data[72:72 + 17] == b"/opt/l/libx.so.1\0" and data.endswith(b"G")


def test_hwcap_subdirectories_are_refused_not_guessed() -> None:
    tree = Tree()
    tree.add(Entry("etc/ld.so.conf", "file", 0o644, data=b"/opt/l\n"))
    tree.add_parents("opt/l/glibc-hwcaps/x86-64-v3/x")
    with pytest.raises(LdconfigUnsupported, match="glibc-hwcaps"):
        libraries(tree, "amd64")


def _elf_with_soname(soname: bytes) -> bytes:
    """A minimal x86-64 ET_DYN: one PT_LOAD over the file, a PT_DYNAMIC with DT_STRTAB, DT_SONAME."""
    import struct

    strtab = b"\0" + soname + b"\0"
    phoff, dynoff = 64, 64 + 2 * 56
    stroff = dynoff + 3 * 16
    size = stroff + len(strtab)
    header = b"\x7fELF\x02\x01\x01" + b"\0" * 9 + struct.pack("<HHIQQQIHHHHHH", 3, 62, 1, 0, phoff, 0, 0,
                                                              64, 56, 2, 64, 0, 0)
    load = struct.pack("<IIQQQQQQ", 1, 5, 0, 0, 0, size, size, 0x1000)
    dynamic = struct.pack("<IIQQQQQQ", 2, 6, dynoff, dynoff, dynoff, 48, 48, 8)
    entries = struct.pack("<qQqQqQ", 5, stroff, 14, 1, 0, 0)
    return header + load + dynamic + entries + strtab
