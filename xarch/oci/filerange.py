"""A byte range of a file read as a file of its own: a blob inside an uncompressed tar.

An oci-archive is a tar of an OCI layout; a blob of it is a member whose bytes lie in one piece
at a known offset (tarfile.TarInfo.offset_data) when the tar is uncompressed and the member is
not sparse. A push reads such a blob where it lies instead of unpacking the archive first (which
wrote every byte again to a scratch folder). The standard library opens files, not slices of
them, and no maintained library does only this: FileRange is the two reads a push makes of a
blob (all of it, or a chunk from an offset), over os.pread, bounded to the range.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

from xarch.errors import InputError


class RangeError(InputError):
    """The file ends before the range does: it was cut short since it was read (exit 2)."""


@dataclass(frozen=True)
class FileRange:
    """SIZE bytes of the file at PATH, from byte OFFSET."""

    path: Path
    offset: int
    size: int

    def read_bytes(self) -> bytes:
        """All SIZE bytes; RangeError when the file holds fewer, OSError when it cannot be read."""
        with self.open() as handle:
            return handle.read()

    def open(self, mode: str = "rb") -> RangeReader:
        """A binary reader of the range (seek and tell count from its start), as Path.open("rb")."""
        if mode != "rb":
            raise ValueError(f"a file range opens only for reading in binary, not {mode!r}")
        return RangeReader(self)


class RangeReader(io.RawIOBase):
    """The bytes of a FileRange: read(n) past its end returns what is left, then b""; a file that
    ends before the range does raises RangeError."""

    def __init__(self, blob: FileRange) -> None:
        super().__init__()
        self.blob = blob
        self.position = 0
        self.fd = -1
        self.fd = os.open(blob.path, os.O_RDONLY | os.O_CLOEXEC)

    def readable(self) -> bool:
        """True: a range is only read."""
        return True

    def seekable(self) -> bool:
        """True: a chunked upload resumes from an offset (xarch.registry.client)."""
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Move to OFFSET from the range's start, the position or its end (WHENCE); ValueError
        before its start. Past its end is allowed: read() then gives b""."""
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.blob.size}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self.position = base + offset
        return self.position

    def tell(self) -> int:
        """The position, from the range's start."""
        return self.position

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        """Fill BUFFER from the position with what is left of the range; the count read (0 at its
        end). RangeError when the file ends first."""
        wanted = min(len(buffer), max(self.blob.size - self.position, 0))
        done = 0
        view = memoryview(buffer).cast("B")
        while done < wanted:
            data = os.pread(self.fd, wanted - done, self.blob.offset + self.position + done)
            if not data:
                raise RangeError(f"{self.blob.path}: ends at byte {self.blob.offset + self.position + done}, "
                                 f"inside a member of {self.blob.size} bytes from byte {self.blob.offset} "
                                 "(cut short since it was read)")
            view[done:done + len(data)] = data
            done += len(data)
        self.position += done
        return done

    def readall(self) -> bytes:
        """What is left of the range."""
        buffer = bytearray(max(self.blob.size - self.position, 0))
        return bytes(buffer[: self.readinto(buffer)])

    def close(self) -> None:
        """Close the file (once)."""
        if not self.closed and self.fd >= 0:
            os.close(self.fd)
        super().close()
