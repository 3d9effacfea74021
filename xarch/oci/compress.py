"""gzip with a pinned compressor, so compressed bytes never depend on the host.

The stdlib's gzip/zlib follow the host's zlib (zlib-ng and zlib differ, and so do
CPUs), and gzip's header OS byte changed between CPython versions. libdeflate, bundled
inside the exactly pinned `deflate` wheel, gives the same bytes everywhere. The gzip
wrapper is written here (10-byte header, CRC32 and size trailer) so that every header
byte is ours: mtime 0, no file name, XFL 0, OS 255 ("unknown").
"""

from __future__ import annotations

import struct
from importlib.metadata import version

import deflate

DEFAULT_LEVEL = 6
GZIP_HEADER = bytes([0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 0xFF])


def compressor_id(level: int) -> str:
    """What is recorded with every image: the compressor, its version and level."""
    return f"gzip (libdeflate via deflate=={version('deflate')}) level {level}"


def gzip_bytes(data: bytes, level: int = DEFAULT_LEVEL) -> bytes:
    if not 1 <= level <= 12:
        raise ValueError(f"compression level must be 1..12, not {level}")
    body = deflate.deflate_compress(data, level)
    trailer = struct.pack("<II", deflate.crc32(data) & 0xFFFFFFFF, len(data) & 0xFFFFFFFF)
    return GZIP_HEADER + body + trailer


def gunzip_bytes(data: bytes) -> bytes:
    """Decompress any gzip (also what other tools wrote), for inspect and diff."""
    import gzip  # reading is not part of the output bytes, so the stdlib is fine here

    return gzip.decompress(data)
