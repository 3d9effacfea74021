"""The normalized tar writer: a Tree in, the same bytes out on every host and Python.

Headers are encoded here rather than by `tarfile`, whose output has changed between
CPython versions (float mtimes add PAX records, device fields, uname lookups). Rules
(DESIGN.md): entries sorted by path bytes; mtime = min(mtime, epoch), epoch when unset;
uid/gid as given with empty uname/gname; permission bits kept; no atime/ctime; a PAX
header only where a name, link target, size or id does not fit ustar; two zero blocks
at the end and no record padding.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from xarch.errors import InputError
from xarch.oci.tree import Entry, is_utf8, path_bytes

BLOCK = 512
_TYPEFLAGS = {"file": b"0", "hardlink": b"1", "symlink": b"2", "dir": b"5"}
_MAX_OCTAL = {8: 0o7777777, 12: 0o77777777777}
PAX_NAME = b"././@PaxHeader"


class TarError(InputError, ValueError):
    """A tree that cannot be written as a tar (an entry type tar lacks, a file changed meanwhile) (exit 2)."""

    pass


def _octal(value: int, width: int) -> bytes:
    """Zero-padded octal, NUL-terminated, as ustar wants: width-1 digits then NUL."""
    return b"%0*o\x00" % (width - 1, value)


def _split_ustar_name(name: bytes) -> tuple[bytes, bytes] | None:
    """(prefix, name) that fit ustar's 155+100 byte fields, or None when none does."""
    if len(name) <= 100:
        return b"", name
    # Split at a "/" so that prefix <= 155 bytes and the rest <= 100 bytes; never at a
    # folder's trailing "/", which would leave the name field empty (GNU tar keeps "dir/").
    for index in range(min(len(name) - 2, 155), 0, -1):
        if name[index : index + 1] == b"/" and len(name) - index - 1 <= 100:
            return name[:index], name[index + 1 :]
    return None


def _pax_record(key: str, value: bytes) -> bytes:
    payload = b" " + key.encode() + b"=" + value + b"\n"
    # The length prefix counts itself, so find the fixed point.
    length = len(payload) + 1
    while len(str(length).encode()) + len(payload) != length:
        length = len(str(length).encode()) + len(payload)
    return str(length).encode() + payload


def _header(
    name: bytes,
    *,
    mode: int,
    uid: int,
    gid: int,
    size: int,
    mtime: int,
    typeflag: bytes,
    linkname: bytes = b"",
    prefix: bytes = b"",
) -> bytes:
    fields = [
        name.ljust(100, b"\x00"),
        _octal(mode, 8),
        _octal(uid, 8),
        _octal(gid, 8),
        _octal(size, 12),
        _octal(mtime, 12),
        b" " * 8,  # checksum placeholder
        typeflag,
        linkname.ljust(100, b"\x00"),
        b"ustar\x0000",
        b"\x00" * 32,  # uname: empty, never looked up
        b"\x00" * 32,  # gname
        _octal(0, 8),  # devmajor
        _octal(0, 8),  # devminor
        prefix.ljust(155, b"\x00"),
        b"\x00" * 12,
    ]
    header = bytearray(b"".join(fields))
    assert len(header) == BLOCK
    header[148:156] = b"%06o\x00 " % sum(header)
    return bytes(header)


def _padding(size: int) -> bytes:
    return b"\x00" * (-size % BLOCK)


def entry_headers(entry: Entry, epoch: int, size: int) -> bytes:
    """The header block(s) of ENTRY: a PAX header first when ustar cannot hold it."""
    name = path_bytes(entry.path) + (b"/" if entry.type == "dir" else b"")
    linkname = path_bytes(entry.linkname) if entry.type in ("symlink", "hardlink") else b""
    mtime = epoch if entry.mtime is None else max(0, min(int(entry.mtime), epoch))
    pax: dict[str, bytes] = {}
    split = _split_ustar_name(name)
    if split is None:
        pax["path"] = name
        split = (b"", name[:100])
    if len(linkname) > 100:
        pax["linkpath"] = linkname
        linkname = linkname[:100]
    for key, value, width in (("size", size, 12), ("uid", entry.uid, 8), ("gid", entry.gid, 8)):
        if value > _MAX_OCTAL[width]:
            pax[key] = str(value).encode()
    if ("path" in pax and not is_utf8(entry.path)) or ("linkpath" in pax and not is_utf8(entry.linkname)):
        # POSIX pax: path and linkpath records are UTF-8 unless hdrcharset says BINARY; a
        # name that is not UTF-8 is stored byte-exact and marked so.
        pax["hdrcharset"] = b"BINARY"
    if entry.xattrs:
        for xname, xvalue in sorted(entry.xattrs):
            pax["SCHILY.xattr." + xname] = xvalue
    fields = {
        "mode": entry.mode & 0o7777,
        "uid": min(entry.uid, _MAX_OCTAL[8]),
        "gid": min(entry.gid, _MAX_OCTAL[8]),
        "size": min(size, _MAX_OCTAL[12]),
        "mtime": mtime,
    }
    out = b""
    if pax:
        records = b"".join(_pax_record(key, pax[key]) for key in sorted(pax))
        out += _header(PAX_NAME, mode=0o644, uid=0, gid=0, size=len(records), mtime=mtime, typeflag=b"x")
        out += records + _padding(len(records))
    out += _header(
        split[1], prefix=split[0], typeflag=_TYPEFLAGS[entry.type], linkname=linkname, **fields
    )
    return out


READ_SIZE = 1 << 20  # a file on disk is read in pieces of this size: memory does not grow with it


def _source_pieces(entry: Entry, epoch: int) -> Iterator[bytes]:
    """Header and content of a file entry whose bytes are on disk, read piece by piece.

    The size in the header is the file's size when opened; a file that shrinks while it is
    read is an error (TarError), one that grows is cut at that size.
    """
    assert entry.source is not None
    with open(entry.source, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        yield entry_headers(entry, epoch, size)
        left = size
        while left:
            piece = handle.read(min(READ_SIZE, left))
            if not piece:
                raise TarError(f"{entry.path}: {entry.source} shrank while it was written to the layer")
            left -= len(piece)
            yield piece
    yield _padding(size)


def tar_chunks(entries: Iterable[Entry], epoch: int) -> Iterator[bytes]:
    """The tar stream of ENTRIES (already in the order to write) as a series of chunks.

    File contents are streamed from their sources, so no chunk is larger than READ_SIZE
    or an in-memory entry's data.

    TarError (exit 2) when a source file changed size while being written, or for an entry type tar
    lacks.
    """
    for entry in entries:
        if entry.type not in _TYPEFLAGS:
            raise TarError(f"{entry.path}: cannot write a {entry.type} entry")
        if entry.type == "file" and entry.data is None and entry.source is not None:
            yield from _source_pieces(entry, epoch)
            continue
        data = entry.read() if entry.type == "file" else b""
        yield entry_headers(entry, epoch, len(data))
        if data:
            yield data
            yield _padding(len(data))
    yield b"\x00" * (2 * BLOCK)


def sorted_entries(entries: Iterable[Entry]) -> list[Entry]:
    """ENTRIES in the tar's order: by path_bytes (the bytes the header holds), the same on every host."""
    return sorted(entries, key=lambda e: path_bytes(e.path))


@dataclass(frozen=True)
class TarResult:
    """A written tar: its `sha256:<hex>` (a layer's diff_id, OCI image spec layer.md) and size in bytes."""

    sha256: str  # "sha256:…" of the uncompressed tar (a layer's diff_id)
    size: int


def write_tar(
    entries: Iterable[Entry], epoch: int, out: BinaryIO, on_bytes: Callable[[int], None] | None = None
) -> TarResult:
    """Write the tar of ENTRIES (sorted here) to OUT; return its digest and size."""
    hasher = hashlib.sha256()
    size = 0
    for chunk in tar_chunks(sorted_entries(entries), epoch):
        hasher.update(chunk)
        out.write(chunk)
        size += len(chunk)
        if on_bytes:
            on_bytes(len(chunk))
    return TarResult("sha256:" + hasher.hexdigest(), size)
