"""Stream one layer blob into per-file records, never unpacking it to disk.

The blob is read once: its bytes are hashed (to check the blob digest), decompressed and
hashed again (to check the diff_id), and walked by `tarfile` in stream mode while each
regular file's content is hashed. gzip is opened explicitly rather than with mode "r|gz"
so the decompressed stream can be hashed on its way into tarfile.
"""

from __future__ import annotations

import gzip
import hashlib
import tarfile
from dataclasses import dataclass
from typing import IO, Any

import zstandard

from xarch.diff.sources import DiffError, LayerRef

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
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


class _HashingReader:
    """A read-only stream that hashes what passes through it."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.hasher = hashlib.sha256()
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.hasher.update(data)
        self.size += len(data)
        return data

    def drain(self) -> None:
        while self.read(1 << 20):
            pass

    @property
    def digest(self) -> str:
        return "sha256:" + self.hasher.hexdigest()


def _normal(name: str) -> str:
    return name.removeprefix("./").rstrip("/") or "."


def read_layer(layer: LayerRef, label: str) -> LayerFiles:
    """Every entry of LAYER by path; raises DiffError when the blob or diff_id does not match."""
    where = f"{label}: layer {layer.position} ({layer.digest})"
    with layer.open() as raw_handle:
        blob = _HashingReader(raw_handle)
        head = blob.raw.peek(4)[:4] if hasattr(blob.raw, "peek") else b""
        zstd = head == ZSTD_MAGIC or "zstd" in layer.media_type
        gz = not zstd and ("gzip" in layer.media_type or head[:2] == b"\x1f\x8b")
        if not head and not layer.media_type:
            gz = _sniff_gzip(layer)
        decompressed: Any = None
        if zstd:  # every frame, as xarch writes one per 1 MiB chunk (xarch/oci/compress.py)
            decompressed = zstandard.ZstdDecompressor().stream_reader(
                blob, read_across_frames=True, closefd=False)  # type: ignore[arg-type]
        elif gz:
            decompressed = gzip.GzipFile(fileobj=blob, mode="rb")  # type: ignore[call-overload]
        tar_stream = _HashingReader(decompressed) if decompressed else blob
        result = LayerFiles({}, [])
        try:
            with tarfile.open(fileobj=tar_stream, mode="r|") as archive:  # type: ignore[call-overload]
                for member in archive:
                    result.files[_normal(member.name)] = _record(member, archive)
                    result.order.append(_normal(member.name))
            tar_stream.drain()  # the zero blocks and padding after the last entry are part of the diff_id
            blob.drain()
        except (tarfile.TarError, OSError, EOFError, zstandard.ZstdError) as error:
            raise DiffError(f"{where}: unreadable layer ({error})") from None
    if blob.digest != layer.digest:
        raise DiffError(f"{where}: blob does not match its digest (got {blob.digest})")
    diff_id = tar_stream.digest
    if layer.diff_id and diff_id != layer.diff_id:
        raise DiffError(f"{where}: uncompressed content {diff_id} does not match the config's diff_id "
                        f"{layer.diff_id}")
    return result


def _sniff_gzip(layer: LayerRef) -> bool:
    with layer.open() as handle:
        return handle.read(2) == b"\x1f\x8b"


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
