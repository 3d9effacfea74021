"""A buildx `type=tar` export read into a Tree (xarch/run/buildx.py), no daemon needed: normalized
owners and modes, hard and symbolic links, big files kept on disk, devices and FIFOs dropped, and a
broken tar or a missing Dockerfile named in one line (tests/integration/test_buildx.py runs buildx)."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from xarch.run.buildx import INLINE_LIMIT, BuildxError, BuildxStage, build_stage, tree_from_tar


def _add(tar: tarfile.TarFile, name: str, kind: bytes, mode: int, data: bytes = b"", **extra: object) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size = kind, mode, len(data)
    info.mtime, info.uname, info.gname = 1_700_000_000, "builder", "staff"
    for key, value in extra.items():
        setattr(info, key, value)
    tar.addfile(info, io.BytesIO(data) if data else None)


def test_a_buildx_tar_becomes_a_normalized_tree(tmp_path: Path) -> None:
    big = bytes(range(256)) * (INLINE_LIMIT // 256 + 10)
    archive = tmp_path / "rootfs.tar"
    with tarfile.open(archive, "w", format=tarfile.PAX_FORMAT) as tar:
        _add(tar, "./", tarfile.DIRTYPE, 0o755)
        _add(tar, "usr/", tarfile.DIRTYPE, 0o755)
        _add(tar, "usr/bin/", tarfile.DIRTYPE, 0o755)
        _add(tar, "usr/bin/tool", tarfile.REGTYPE, 0o4755, b"#!/bin/sh\n", uid=0, gid=50)
        _add(tar, "usr/bin/tool-again", tarfile.LNKTYPE, 0o4755, linkname="usr/bin/tool")
        _add(tar, "usr/bin/alias", tarfile.SYMTYPE, 0o777, linkname="tool")
        _add(tar, "usr/share/big.bin", tarfile.REGTYPE, 0o644, big, uid=1000, gid=1000)
        _add(tar, "dev/null", tarfile.CHRTYPE, 0o666, devmajor=1, devminor=3)
        _add(tar, "run/fifo", tarfile.FIFOTYPE, 0o600)
    tree = tree_from_tar(archive, tmp_path / "content")

    assert [e.path for e in tree] == ["usr", "usr/bin", "usr/bin/alias", "usr/bin/tool", "usr/bin/tool-again",
                                      "usr/share/big.bin"]
    tool = tree.get("usr/bin/tool")
    assert tool is not None and (tool.type, tool.mode, tool.uid, tool.gid) == ("file", 0o4755, 0, 50)
    assert tool.read() == b"#!/bin/sh\n" and tool.mtime is None
    again = tree.get("usr/bin/tool-again")
    assert again is not None and (again.type, again.linkname) == ("hardlink", "usr/bin/tool")
    alias = tree.get("usr/bin/alias")
    assert alias is not None and (alias.type, alias.linkname) == ("symlink", "tool")
    big_entry = tree.get("usr/share/big.bin")
    assert big_entry is not None and big_entry.data is None and big_entry.source is not None
    assert big_entry.read() == big and (big_entry.uid, big_entry.gid) == (1000, 1000)
    assert big_entry.source.name == hashlib.sha256(big).hexdigest()


def test_a_broken_tar_is_one_clear_error(tmp_path: Path) -> None:
    archive = tmp_path / "rootfs.tar"
    archive.write_bytes(b"this is not a tar" * 100)
    with pytest.raises(BuildxError, match="rootfs.tar: cannot read the buildx output"):
        tree_from_tar(archive, tmp_path / "content")


def test_a_missing_dockerfile_is_named(tmp_path: Path) -> None:
    stage = BuildxStage(tmp_path / "Dockerfile.nope", tmp_path)
    with pytest.raises(BuildxError, match="Dockerfile.nope: no such Dockerfile"):
        build_stage(stage, ["amd64"], tmp_path / "work", docker="docker")
