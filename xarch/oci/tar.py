"""The normalized tar writer: a Tree in, the same bytes out on every host and Python.

Headers are encoded here rather than by `tarfile`, whose output has changed between
CPython versions (float mtimes add PAX records, device fields, uname lookups). Rules
(DESIGN.md): entries sorted by path bytes; mtime = min(mtime, epoch), epoch when unset;
uid/gid as given with empty uname/gname; permission bits kept; no atime/ctime; a PAX
header only where a name, link target, size or id does not fit ustar; two zero blocks
at the end and no record padding.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import struct
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


READ_SIZE = 1 << 20  # the tar stream is handed on in chunks of this size: memory does not grow with a file

# The fixed part of a ustar header after the link name: magic and version, empty uname and
# gname, devmajor and devminor 0, an empty prefix and the 12 unused bytes (what _header writes).
_USTAR_TAIL = b"ustar\x0000" + b"\x00" * 64 + _octal(0, 8) * 2 + b"\x00" * 167
# The checksum (POSIX ustar: the sum of the header's bytes, its own field counted as 8 spaces)
# of everything but the name, the five numeric fields, the typeflag and the link name.
_FIXED_SUM = 8 * ord(" ") + sum(_USTAR_TAIL)
_HEADER_LAYOUT = struct.Struct("100s48s8s1s100s255s")  # name, mode..mtime, checksum, type, link, tail
assert _HEADER_LAYOUT.size == BLOCK
_FAST_TYPES = {"file": b"0", "hardlink": b"1", "symlink": b"2", "dir": b"5"}
_ZEROS = memoryview(bytes(2 * BLOCK))


def _pack_header(entry: Entry, epoch: int, size: int, into: bytearray, at: int) -> bool:
    """Write ENTRY's ustar header into INTO[AT:AT+512] when one plain header holds it (no PAX
    record needed, name within 100 bytes); False, writing nothing, otherwise.

    The same bytes as entry_headers, built with one format and one struct call, and the checksum
    summed over the variable fields only.
    """
    if entry.xattrs or size > 0o77777777777:
        return False
    uid, gid = entry.uid, entry.gid
    if uid > 0o7777777 or gid > 0o7777777:
        return False
    typeflag = _FAST_TYPES[entry.type]
    name = entry.path.encode("utf-8", "surrogateescape")
    if typeflag == b"5":
        name += b"/"
    if len(name) > 100:
        return False
    if typeflag == b"1" or typeflag == b"2":
        linkname = entry.linkname.encode("utf-8", "surrogateescape")
        if len(linkname) > 100:
            return False
    else:
        linkname = b""
    mtime = epoch if entry.mtime is None else max(0, min(int(entry.mtime), epoch))
    if mtime > 0o77777777777:
        return False
    numbers = b"%07o\x00%07o\x00%07o\x00%011o\x00%011o\x00" % (entry.mode & 0o7777, uid, gid, size, mtime)
    checksum = _FIXED_SUM + sum(name) + sum(numbers) + typeflag[0] + sum(linkname)
    checksum_field = b"%06o\x00 " % checksum
    _HEADER_LAYOUT.pack_into(into, at, name, numbers, checksum_field, typeflag, linkname, _USTAR_TAIL)
    return True


class _Chunker:
    """Cuts the tar stream into chunks of exactly SIZE bytes (a multiple of BLOCK; the last chunk
    shorter) in one reused buffer that headers are packed and file contents read straight into."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.buffer = bytearray(size)
        self.view = memoryview(self.buffer)
        self.at = 0

    def put(self, data: bytes | memoryview) -> Iterator[bytes]:
        """Append DATA; yield every chunk it fills."""
        data = memoryview(data)
        while data:
            take = min(len(data), self.size - self.at)
            self.view[self.at : self.at + take] = data[:take]
            self.at += take
            data = data[take:]
            if self.at == self.size:
                yield self.take()

    def take(self) -> bytes:
        """The bytes held (a full chunk or the last one); the buffer starts again empty."""
        chunk = bytes(self.view[: self.at])
        self.at = 0
        return chunk

    def pad(self, size: int) -> Iterator[bytes]:
        """Zeros up to the block after SIZE content bytes; yield the chunk they fill, if they do.
        (Padding never crosses a chunk's end: chunks are whole blocks.)"""
        padding = -size % BLOCK
        if padding:
            self.view[self.at : self.at + padding] = _ZEROS[:padding]
            self.at += padding
            if self.at == self.size:
                yield self.take()

    def header(self, entry: Entry, epoch: int, size: int) -> Iterator[bytes]:
        """ENTRY's header block(s); a chunk boundary always falls between blocks."""
        if _pack_header(entry, epoch, size, self.buffer, self.at):
            self.at += BLOCK
            if self.at == self.size:
                yield self.take()
        else:
            yield from self.put(entry_headers(entry, epoch, size))

    def source(self, entry: Entry, epoch: int) -> Iterator[bytes]:
        """Header and content of a file entry whose bytes are on disk, read into the buffer.

        The size in the header is the file's size when opened; a file that shrinks while it is
        read is an error (TarError), one that grows is cut at that size.
        """
        assert entry.source is not None
        source = os.fspath(entry.source)
        fd = os.open(source, os.O_RDONLY | os.O_CLOEXEC)
        try:
            status = os.fstat(fd)
            if stat.S_ISDIR(status.st_mode):
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), source)
            size = status.st_size
            yield from self.header(entry, epoch, size)
            left = size
            while left:
                at = self.at
                got = os.readv(fd, [self.view[at : at + min(left, self.size - at)]])
                if not got:
                    raise TarError(f"{entry.path}: {entry.source} shrank while it was written to the layer")
                left -= got
                self.at = at + got
                if self.at == self.size:
                    yield self.take()
        finally:
            os.close(fd)
        yield from self.pad(size)


def tar_chunks(entries: Iterable[Entry], epoch: int, size: int = READ_SIZE) -> Iterator[bytes]:
    """The tar stream of ENTRIES (already in the order to write) in chunks of exactly SIZE bytes
    (a positive multiple of BLOCK; default READ_SIZE, the gzip chunk of xarch.oci.compress, which
    then takes them as they are), the last one shorter.

    File contents are read from their sources straight into the chunk, so memory is a chunk
    plus the largest in-memory entry's data, whatever the sizes of the files.

    TarError (exit 2) when a source file shrank while being written, or for an entry type tar
    lacks; OSError when a source cannot be opened or read.
    """
    if size <= 0 or size % BLOCK:
        raise ValueError(f"tar chunk size must be a positive multiple of {BLOCK}, not {size}")
    chunker = _Chunker(size)
    for entry in entries:
        if entry.type not in _TYPEFLAGS:
            raise TarError(f"{entry.path}: cannot write a {entry.type} entry")
        if entry.type == "file" and entry.data is None and entry.source is not None:
            yield from chunker.source(entry, epoch)
            continue
        data = entry.read() if entry.type == "file" else b""
        yield from chunker.header(entry, epoch, len(data))
        if data:
            yield from chunker.put(data)
            yield from chunker.pad(len(data))
    yield from chunker.put(_ZEROS)
    if chunker.at:
        yield chunker.take()


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
