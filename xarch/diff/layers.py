"""Stream one layer blob into per-file records, never unpacking it to disk.

The blob is read once, through the read model (xarch.oci.model.Layer.open_uncompressed): its
bytes are checked against the blob digest, decompressed and checked against the diff_id, and
walked by `tarfile` in stream mode while each regular file's content is hashed.
"""

from __future__ import annotations

import hashlib
import tarfile
from dataclasses import dataclass
from typing import Any

from xarch.diff.sources import DiffError, LayerRef

_TYPES = {tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.DIRTYPE: "dir",
          tarfile.SYMTYPE: "symlink", tarfile.LNKTYPE: "hardlink", tarfile.CHRTYPE: "char device",
          tarfile.BLKTYPE: "block device",
          tarfile.FIFOTYPE: "fifo", tarfile.CONTTYPE: "file"}
XATTR_PREFIX = "SCHILY.xattr."


@dataclass(frozen=True)
class FileRecord:
    """What a layer says about one path; every field here is part of the layer's bytes."""

    type: str
    size: int
    mode: int
    uid: int
    gid: int
    uname: str
    gname: str
    mtime: float
    linkname: str
    xattrs: tuple[tuple[str, str], ...]
    sha256: str | None  # of a regular file's content

    def fields(self) -> dict[str, Any]:
        """{field name: value} as diff reports them: type, content (sha256 hex), size (bytes), mode
        (4 octal digits), owner uid:gid, owner names, mtime (seconds), link target, xattrs.
        """
        return {
            "type": self.type,
            "content": self.sha256,
            "size": self.size,
            "mode": f"{self.mode:04o}",
            "owner": f"{self.uid}:{self.gid}",
            "owner names": f"{self.uname}:{self.gname}",
            "mtime": self.mtime,
            "link target": self.linkname,
            "xattrs": dict(self.xattrs),
        }


@dataclass
class LayerFiles:
    """The files of one layer: {path: FileRecord}, and the paths in the order the tar stores them."""

    files: dict[str, FileRecord]
    order: list[str]  # paths in the order the tar stores them


def _normal(name: str) -> str:
    return name.removeprefix("./").rstrip("/") or "."


def read_layer(layer: LayerRef, label: str) -> LayerFiles:
    """Every entry of LAYER by path. The tar streams once through xarch.oci.model's checks: the blob
    against its digest and size, the tar (to its last padding byte) against the diff_id, so a mismatch
    raises BlobMismatch; a tar that cannot be read raises DiffError (both exit 2)."""
    where = f"{label}: layer {layer.position} ({layer.digest})"
    result = LayerFiles({}, [])
    with layer.open_tar() as tar_stream:
        try:
            with tarfile.open(fileobj=tar_stream, mode="r|") as archive:
                for member in archive:
                    result.files[_normal(member.name)] = _record(member, archive)
                    result.order.append(_normal(member.name))
        except (tarfile.TarError, OSError, EOFError) as error:
            raise DiffError(f"{where}: unreadable layer ({error})") from None
        tar_stream.verify()  # type: ignore[attr-defined]  # the zero blocks after the last entry count too
    return result


def _record(member: tarfile.TarInfo, archive: tarfile.TarFile) -> FileRecord:
    digest = None
    if member.isreg():
        hasher = hashlib.sha256()
        handle = archive.extractfile(member)
        assert handle is not None
        while chunk := handle.read(1 << 20):
            hasher.update(chunk)
        digest = "sha256:" + hasher.hexdigest()
    xattrs = tuple(sorted((key.removeprefix(XATTR_PREFIX), value) for key, value in member.pax_headers.items()
                          if key.startswith(XATTR_PREFIX)))
    return FileRecord(
        type=_TYPES.get(member.type, f"type {member.type!r}"),
        size=member.size if member.isreg() else 0,
        mode=member.mode & 0o7777,
        uid=member.uid,
        gid=member.gid,
        uname=member.uname,
        gname=member.gname,
        mtime=member.mtime,
        linkname=member.linkname if (member.issym() or member.islnk()) else "",
        xattrs=xattrs,
        sha256=digest,
    )
