"""Layer compression with pinned compressors, on every core, so compressed bytes never depend on the host.

The stdlib's gzip/zlib follow the host's zlib (zlib-ng and zlib differ, and so do
CPUs), and gzip's header OS byte changed between CPython versions. libdeflate, bundled
inside the exactly pinned `deflate` wheel, gives the same bytes everywhere. The gzip
wrapper is written here (10-byte header, CRC32 and size trailer) so that every header
byte is ours: mtime 0, no file name, XFL 0, OS 255 ("unknown"). zstd layers use the
libzstd inside the exactly pinned `zstandard` wheel.

All cores, same bytes (the scheme, and why): the input (a layer's tar stream) is cut into
fixed chunks of CHUNK bytes — a constant, never derived from the host or its core count —
and every chunk is compressed on its own, in a thread pool, into a complete gzip member
(RFC 1952 §2.2: "A gzip file consists of a series of members"); the members are written in
input order. Every byte is thus a function of the input, the chunk size, the level and the
pinned library, whatever the number of workers or the order they finish in.

pigz's alternative (one member whose deflate blocks continue across chunks, each chunk
primed with the previous 32 KiB as a dictionary) is not available with libdeflate, which
has no dictionary or sync-flush API, and zlib's bytes are host-dependent. The price of
independent members is 18 bytes a chunk plus the 32 KiB window lost at each boundary:
about 0.1–0.2 % of output at 1 MiB chunks (215.2 MB against 214.9 MB for the
300 MB tree of BENCHMARKS.md). Every gzip reader that matters reads multi-member
gzip: Go's compress/gzip (docker, containerd, skopeo, podman, umoci) reads "multistream"
by default, GNU gzip, zlib's gzread and Python's gzip too; tests/integration/test_consumers.py loads
such layers with the tools present.

zstd is one frame compressed by libzstd's own worker threads (ZSTD_c_nbWorkers ≥ 1): its
multithreaded mode cuts the input into jobs by a rule of the level and the pinned version,
never of the worker count or of how the input is fed, so the bytes are the same for 1 or 64
workers (tests/unit/test_compress.py; only nbWorkers=0, never used here, gives other bytes). So
zstd needs no chunking of ours, and its window spans the whole stream. (Checked with libzstd
1.5.7: `threads=1, 2, 4, 8` give identical bytes for any split of the input.)

libdeflate is called through ctypes from the same shared object the `deflate` wheel loaded
(its libdeflate_* symbols are exported): ctypes releases the GIL during a foreign call,
which `deflate.deflate_compress` 0.9.0 does not, so the thread pool really runs on every
core. The output is the same libdeflate's and is checked against `deflate.deflate_compress`
in tests/unit/test_compress.py; if the symbols cannot be found, the wheel's own (serial) function
is used, which gives the same bytes more slowly.
"""

from __future__ import annotations

import ctypes
import io
import os
import queue
import struct
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import IO, Any, BinaryIO

import deflate

DEFAULT_LEVEL = 6
GZIP_HEADER = bytes([0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 0xFF])
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
# Part of the output bytes (gzip): changing it changes the digest of every layer larger than it.
CHUNK = 1 << 20
ALGORITHMS = ("gzip", "zstd")
LEVELS = {"gzip": (1, 12), "zstd": (1, 19)}


def check_level(algorithm: str, level: int) -> None:
    """ValueError unless ALGORITHM is known and LEVEL is in its range (gzip 1..12, zstd 1..19)."""
    if algorithm not in LEVELS:
        raise ValueError(f"compression algorithm must be one of {', '.join(ALGORITHMS)}, not {algorithm!r}")
    low, high = LEVELS[algorithm]
    if not low <= level <= high:
        raise ValueError(f"{algorithm} compression level must be {low}..{high}, not {level}")


def compressor_id(level: int, algorithm: str = "gzip") -> str:
    """What is recorded with every image: the compressor, its version, level and chunking."""
    if algorithm == "zstd":
        import zstandard

        libzstd = ".".join(map(str, zstandard.ZSTD_VERSION))
        return f"zstd (libzstd {libzstd} via zstandard=={zstandard.__version__}) level {level}, one MT frame"
    # The module's own version, which is its distribution's (tests/unit/test_compress.py checks):
    # importlib.metadata would cost every build's start-up ~15 ms to say the same.
    return f"gzip (libdeflate via deflate=={deflate.__version__}) level {level}, 1 MiB members"


class _Libdeflate:
    """The libdeflate inside the pinned `deflate` wheel, through ctypes (GIL released per call).

    A compressor object is not thread-safe, so each call takes one from a free list (at most
    one per concurrent caller is ever allocated) and gives it back.
    """

    def __init__(self, path: str) -> None:
        lib = ctypes.CDLL(path)
        lib.libdeflate_alloc_compressor.restype = ctypes.c_void_p
        lib.libdeflate_alloc_compressor.argtypes = [ctypes.c_int]
        lib.libdeflate_free_compressor.restype = None
        lib.libdeflate_free_compressor.argtypes = [ctypes.c_void_p]
        lib.libdeflate_deflate_compress_bound.restype = ctypes.c_size_t
        lib.libdeflate_deflate_compress_bound.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        lib.libdeflate_deflate_compress.restype = ctypes.c_size_t
        lib.libdeflate_deflate_compress.argtypes = [
            ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t]
        lib.libdeflate_crc32.restype = ctypes.c_uint32
        lib.libdeflate_crc32.argtypes = [ctypes.c_uint32, ctypes.c_char_p, ctypes.c_size_t]
        self.lib = lib
        self.free: dict[int, queue.SimpleQueue[int]] = {level: queue.SimpleQueue() for level in range(1, 13)}

    def deflate(self, data: bytes, level: int) -> bytes:
        try:
            compressor = self.free[level].get_nowait()
        except queue.Empty:
            compressor = self.lib.libdeflate_alloc_compressor(level)
            if not compressor:
                raise MemoryError("libdeflate_alloc_compressor failed") from None
        try:
            bound = self.lib.libdeflate_deflate_compress_bound(compressor, len(data))
            out = ctypes.create_string_buffer(bound)
            size = self.lib.libdeflate_deflate_compress(compressor, data, len(data), out, bound)
            if size == 0:  # cannot happen with the bound's buffer
                raise RuntimeError("libdeflate_deflate_compress: output buffer too small")
            return ctypes.string_at(out, size)
        finally:
            self.free[level].put(compressor)

    def crc32(self, data: bytes) -> int:
        return int(self.lib.libdeflate_crc32(0, data, len(data)))


def _load_libdeflate() -> _Libdeflate | None:
    try:
        from deflate import _deflate

        return _Libdeflate(_deflate.__file__)
    except (OSError, AttributeError, ImportError):
        return None


_LIBDEFLATE = _load_libdeflate()


def gzip_member(data: bytes, level: int = DEFAULT_LEVEL) -> bytes:
    """One complete gzip member of DATA (RFC 1952): our fixed header, raw deflate, CRC32, ISIZE."""
    if _LIBDEFLATE is not None:
        body, crc = _LIBDEFLATE.deflate(data, level), _LIBDEFLATE.crc32(data)
    else:
        body, crc = bytes(deflate.deflate_compress(data, level)), deflate.crc32(data)
    return GZIP_HEADER + body + struct.pack("<II", crc & 0xFFFFFFFF, len(data) & 0xFFFFFFFF)


ZSTD_MAX_THREADS = 8  # each libzstd job buffers a few window sizes: this bounds memory on large hosts


def _zstd_stream(pieces: Iterable[bytes], level: int, workers: int) -> Iterator[bytes]:
    """One zstd frame of the concatenated PIECES, compressed by WORKERS (≥ 1) libzstd threads.

    Fixed parameters: the level's, a checksum, no dictionary id; the content size is not in the
    header (the stream's length is not known when it starts). The GIL is released while libzstd works.
    """
    import zstandard

    params = zstandard.ZstdCompressionParameters.from_level(
        level, threads=max(1, min(workers, ZSTD_MAX_THREADS)), write_checksum=1, write_content_size=0,
        write_dict_id=0)
    stream = zstandard.ZstdCompressor(compression_params=params).compressobj()
    for piece in pieces:
        out = stream.compress(piece)
        if out:
            yield bytes(out)
    yield bytes(stream.flush())


def chunk_compressor(algorithm: str, level: int) -> Callable[[bytes], bytes]:
    """The function that turns one chunk into one gzip member."""
    check_level(algorithm, level)
    if algorithm != "gzip":
        raise ValueError(f"{algorithm} is not compressed chunk by chunk")
    return lambda data: gzip_member(data, level)


def fixed_chunks(pieces: Iterable[bytes], size: int = CHUNK) -> Iterator[bytes]:
    """PIECES (any lengths) re-cut into chunks of exactly SIZE bytes, the last one shorter;
    one empty chunk when PIECES hold no byte (so empty input is still one member)."""
    parts: list[bytes] = []
    held = 0
    produced = False
    for piece in pieces:
        if not piece:
            continue
        parts.append(piece)
        held += len(piece)
        if held >= size:
            joined = b"".join(parts)
            whole = len(joined) - len(joined) % size
            for start in range(0, whole, size):
                yield joined[start : start + size]
            produced = True
            parts = [joined[whole:]] if whole < len(joined) else []
            held = len(joined) - whole
    if held or not produced:
        yield b"".join(parts)


MAX_WORKERS = 16  # memory: 2 chunks in and out per worker in flight; beyond this, little to gain


def default_workers() -> int:
    """Threads for compression: the CPUs this process may run on (at most MAX_WORKERS). Never
    changes the bytes."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, MAX_WORKERS))


def compressed_stream(pieces: Iterable[bytes], algorithm: str = "gzip", level: int = DEFAULT_LEVEL,
                      workers: int | None = None) -> Iterator[bytes]:
    """The compressed stream of the concatenated PIECES: gzip as one member per CHUNK input bytes,
    zstd as one multithreaded frame (see the module's docstring).

    gzip chunks are compressed by WORKERS threads (default: every CPU); at most 2×WORKERS+1 chunks
    are in flight, so memory stays a few MiB whatever the input size. The output is the same
    for any WORKERS and any way PIECES are split. ValueError for an unknown algorithm or a
    level out of range; exceptions of the producer of PIECES or of a compressor propagate.
    """
    check_level(algorithm, level)
    workers = workers or default_workers()
    if algorithm == "zstd":
        yield from _zstd_stream(pieces, level, workers)
        return
    compress = chunk_compressor(algorithm, level)
    if workers == 1:
        for chunk in fixed_chunks(pieces):
            yield compress(chunk)
        return
    # Three stages overlap: a producer thread reads and cuts PIECES (the tar writer: file reads,
    # headers, the diff_id hash) and submits chunks, WORKERS threads compress, and the caller's
    # thread takes the results in order (the blob hash and the file write). The queue bounds
    # what is in flight.
    in_flight: queue.Queue[Future[bytes] | BaseException | None] = queue.Queue(maxsize=2 * workers)
    stop = threading.Event()
    with ThreadPoolExecutor(workers, thread_name_prefix="xarch-compress") as pool:

        def produce() -> None:
            try:
                for chunk in fixed_chunks(pieces):
                    if stop.is_set():
                        return
                    in_flight.put(pool.submit(compress, chunk))
            except BaseException as error:  # handed to the caller's thread, raised there
                in_flight.put(error)
                return
            in_flight.put(None)

        producer = threading.Thread(target=produce, name="xarch-tar", daemon=True)
        producer.start()
        try:
            while (item := in_flight.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                yield item.result()
        finally:
            stop.set()
            while producer.is_alive() or not in_flight.empty():  # unblock and drain the producer
                try:
                    left = in_flight.get(timeout=0.05)
                except queue.Empty:
                    continue
                if isinstance(left, Future):
                    left.cancel()
            producer.join()


def compress_bytes(data: bytes, algorithm: str = "gzip", level: int = DEFAULT_LEVEL) -> bytes:
    """DATA compressed exactly as a layer of those bytes would be (see compressed_stream)."""
    return b"".join(compressed_stream([bytes(data)], algorithm, level))


def gzip_bytes(data: bytes, level: int = DEFAULT_LEVEL) -> bytes:
    """DATA as xarch's gzip: one member per CHUNK bytes (a single member up to 1 MiB)."""
    if not 1 <= level <= 12:
        raise ValueError(f"compression level must be 1..12, not {level}")
    return compress_bytes(data, "gzip", level)


def decompressing_reader(raw: BinaryIO, media_type: str) -> BinaryIO:
    """A reader of RAW's tar stream for a layer of MEDIA_TYPE: every gzip member (xarch writes one
    per 1 MiB; tarfile's own "r|gz" stops after the first), every zstd frame, or RAW itself."""
    if media_type.endswith("+zstd") or media_type.endswith(".zstd"):
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
    if media_type.endswith("gzip") or "tar.gzip" in media_type:
        return io.BufferedReader(GzipMembers(raw), CHUNK)
    return raw


class GzipMembers(io.RawIOBase):
    """A gzip stream of one or more members undone (RFC 1952; xarch writes one per 1 MiB chunk), its
    errors as OSError. Unlike Python's gzip module, which skips zero bytes after the last member,
    any byte after it is an error: Go's compress/gzip refuses them ("gzip: invalid header"), and
    containerd and dockerd read layers with it unless unpigz is installed (which, like GNU gzip,
    warns and goes on): such a layer is not one every consumer reads."""

    def __init__(self, compressed: IO[bytes]) -> None:
        self.compressed = compressed
        self.inflate = zlib.decompressobj(wbits=31)  # 31: a gzip header and trailer around deflate
        self.input = b""

    def readable(self) -> bool:
        """True: a stream to read from."""
        return True

    def _more(self) -> bytes:
        return self.compressed.read(CHUNK)

    def readinto(self, buffer: Any) -> int:
        """Fill BUFFER with the next uncompressed bytes; 0 at the end. OSError for a corrupt,
        cut-short or padded stream."""
        try:
            while True:
                if self.inflate.eof:
                    rest = self.inflate.unused_data + self.input
                    while len(rest) < 2:
                        more = self._more()
                        if not more:
                            break
                        rest += more
                    if not rest:
                        return 0  # the end of the last member and of the blob
                    if not rest.startswith(b"\x1f\x8b"):
                        raise OSError(f"gzip: {len(rest)}+ bytes after the last member (Go's gzip "
                                      "reader refuses the layer)")
                    self.inflate, self.input = zlib.decompressobj(wbits=31), rest
                if not self.input:
                    self.input = self._more()
                    if not self.input:
                        raise OSError("gzip: the blob ends inside a member (cut short)")
                data = self.inflate.decompress(self.input, len(buffer))
                self.input = self.inflate.unconsumed_tail
                if data:
                    buffer[: len(data)] = data
                    return len(data)
        except zlib.error as error:
            raise OSError(f"gzip: {error}") from None

