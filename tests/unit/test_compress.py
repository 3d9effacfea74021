"""The pinned gzip (xarch/oci/compress.py): fixed header bytes, readable by GNU gzip, stable."""

from __future__ import annotations

import gzip
import hashlib
import io
import subprocess
import sys

import deflate
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.needs import need_tool
from xarch.oci.compress import (
    _LIBDEFLATE,
    CHUNK,
    GZIP_HEADER,
    ZSTD_MAGIC,
    compress_bytes,
    compressed_stream,
    compressor_id,
    gzip_bytes,
)
from xarch.oci.tar import write_tar
from xarch.oci.tree import Entry

# magic, CM=deflate, FLG=0 (no name, no extra), MTIME=0, XFL=0, OS=255 (unknown)
FIXED_HEADER = bytes.fromhex("1f8b0800" "00000000" "00ff")


def sample_tar() -> bytes:
    buffer = io.BytesIO()
    entries = [
        Entry(f"usr/share/doc/f{i}", "file", 0o644, data=(b"line %d\n" % i) * (i + 1)) for i in range(200)
    ]
    write_tar(entries, 1_700_000_000, buffer)
    return buffer.getvalue()


def gnu_gunzip(data: bytes) -> bytes:
    result = subprocess.run([need_tool("gzip"), "-dc"], input=data, capture_output=True, check=False)
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout


def test_header_bytes_are_fixed() -> None:
    assert GZIP_HEADER == FIXED_HEADER
    for data in (b"", b"x", sample_tar()):
        assert gzip_bytes(data)[:10] == FIXED_HEADER


@pytest.mark.parametrize("level", [1, 6, 9, 12])
def test_gnu_gzip_decompresses_to_the_tar(level: int) -> None:
    tar = sample_tar()
    blob = gzip_bytes(tar, level)
    assert gnu_gunzip(blob) == tar
    assert gzip.decompress(blob) == tar
    # `gzip -t` also checks the CRC32 and size trailer.
    check = subprocess.run([need_tool("gzip"), "-t"], input=blob, capture_output=True, check=False)
    assert check.returncode == 0, check.stderr.decode()


def test_same_bytes_on_repeated_calls() -> None:
    tar = sample_tar()
    blobs = {gzip_bytes(tar) for _ in range(5)}
    assert len(blobs) == 1
    assert gzip_bytes(bytes(bytearray(tar))) == blobs.pop()  # an equal copy, not the same object


@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=20_000), level=st.integers(1, 12))
def test_round_trip_any_bytes(data: bytes, level: int) -> None:
    blob = gzip_bytes(data, level)
    assert blob[:10] == FIXED_HEADER
    assert gzip_bytes(data, level) == blob
    assert gzip.decompress(blob) == data


def test_known_bytes_do_not_drift() -> None:
    """A pinned libdeflate gives these exact bytes on every host; a change here changes every digest."""
    blob = gzip_bytes(sample_tar(), 6)
    assert hashlib.sha256(blob).hexdigest() == KNOWN_SHA256


def test_levels_out_of_range_are_refused() -> None:
    for level in (0, 13):
        with pytest.raises(ValueError, match="1..12"):
            gzip_bytes(b"x", level)


def test_compressor_is_recorded_with_its_pinned_version() -> None:
    assert compressor_id(6) == "gzip (libdeflate via deflate==0.9.0) level 6, 1 MiB members"
    assert compressor_id(3, "zstd") == "zstd (libzstd 1.5.7 via zstandard==0.25.0) level 3, one MT frame"


def test_the_recorded_versions_are_the_installed_distributions() -> None:
    # compressor_id reads the modules' own __version__ (start-up: no importlib.metadata); it must be
    # what the installed distribution says, or images would record a version that is not installed.
    from importlib.metadata import version

    import deflate
    import zstandard

    assert deflate.__version__ == version("deflate")
    assert zstandard.__version__ == version("zstandard")


def big_input() -> bytes:
    """2.5 MiB, text and random-looking bytes, the same on every host (three chunks)."""
    text = b"".join(b"line %d of the layer, some words repeat\n" % i for i in range(40_000))
    noise = hashlib.shake_256(b"xarch").digest(CHUNK)
    return (text + noise + text)[: CHUNK * 2 + CHUNK // 2]


def test_ctypes_libdeflate_gives_the_wheels_bytes() -> None:
    """The GIL-free path (ctypes into the wheel's libdeflate) is the same compressor as deflate's own."""
    assert _LIBDEFLATE is not None, "the deflate wheel's libdeflate_* symbols were not found"
    data = big_input()[:CHUNK]
    for level in (1, 6, 12):
        assert _LIBDEFLATE.deflate(data, level) == deflate.deflate_compress(data, level)
    assert _LIBDEFLATE.crc32(data) == deflate.crc32(data)


@pytest.mark.parametrize("algorithm", ["gzip", "zstd"])
def test_same_bytes_for_any_worker_count_and_any_split(algorithm: str) -> None:
    data = big_input()
    reference = b"".join(compressed_stream([data], algorithm, 6, workers=1))
    splits = [[data], [data[:1], data[1:]], [data[i : i + 4099] for i in range(0, len(data), 4099)]]
    for workers in (2, 3, 8):
        for pieces in splits:
            assert b"".join(compressed_stream(iter(pieces), algorithm, 6, workers=workers)) == reference


def test_gzip_is_one_member_per_chunk_and_gnu_gzip_reads_it() -> None:
    data = big_input()
    blob = gzip_bytes(data, 6)
    members = [gzip_bytes(data[i : i + CHUNK], 6) for i in range(0, len(data), CHUNK)]
    assert len(members) == 3 and blob == b"".join(members)
    assert gnu_gunzip(blob) == data and gzip.decompress(blob) == data
    check = subprocess.run([need_tool("gzip"), "-t"], input=blob, capture_output=True, check=False)
    assert check.returncode == 0, check.stderr.decode()


def test_zstd_is_one_frame_whatever_the_workers_and_the_split() -> None:
    """libzstd's multithreaded jobs (several here: 24 MiB) give the same single frame for any worker
    count ≥ 1 and any way the input is fed."""
    data = big_input() * 10
    reference = b"".join(compressed_stream([data], "zstd", 3, workers=1))
    for workers in (2, 3, 8):
        pieces = [data[i : i + 65537] for i in range(0, len(data), 65537)]
        assert b"".join(compressed_stream(iter(pieces), "zstd", 3, workers=workers)) == reference
    assert hashlib.sha256(reference).hexdigest() == KNOWN_MT_ZSTD


def test_zstd_frames_are_read_by_the_zstd_tool() -> None:
    data = big_input()
    blob = compress_bytes(data, "zstd", 3)
    assert blob[:4] == ZSTD_MAGIC
    result = subprocess.run([need_tool("zstd"), "-dc"], input=blob, capture_output=True, check=False)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == data


def test_large_inputs_do_not_drift() -> None:
    """Pinned bytes of a multi-chunk input: the same on every host, CPU and core count."""
    data = big_input()
    assert hashlib.sha256(compress_bytes(data, "gzip", 6)).hexdigest() == KNOWN_BIG_GZIP
    assert hashlib.sha256(compress_bytes(data, "zstd", 3)).hexdigest() == KNOWN_BIG_ZSTD


def test_zstd_levels_out_of_range_are_refused() -> None:
    for level in (0, 20):
        with pytest.raises(ValueError, match="1..19"):
            compress_bytes(b"x", "zstd", level)
    with pytest.raises(ValueError, match="gzip, zstd"):
        compress_bytes(b"x", "brotli", 3)


KNOWN_SHA256 = "53d93312ff9758b30b566168d3315989d39ec317546d323c6b0b66850373e117"
KNOWN_BIG_GZIP = "a3bb458c6de1006b4f23f942de6301f26eeb05384bd967dfd50d38d2ab63cb77"
KNOWN_BIG_ZSTD = "3e1d25a73f2cbeee749357bfacac95af35900ebfd0051fd055d85187eb50d441"


LAYER_DIGEST = """\
import hashlib, sys, tempfile
from pathlib import Path
from xarch.oci.compress import default_workers
from xarch.oci.layer import write_layer
from xarch.oci.tree import Entry
from xarch.oci.store import Store
data = hashlib.shake_256(b"cores").digest(3 << 20) + b"text " * 300_000
with tempfile.TemporaryDirectory() as store:
    layer = write_layer("l", [Entry("f", "file", 0o644, data=data)], 1, Store(Path(store)), sys.argv[1], 6)
print(default_workers(), layer.digest, layer.diff_id)
"""


@pytest.mark.parametrize("algorithm", ["gzip", "zstd"])
def test_one_cpu_and_every_cpu_give_the_same_layer(algorithm: str) -> None:
    """The real process pinned to one CPU (one worker) writes the bytes of an unpinned one."""
    taskset = need_tool("taskset")
    command = [sys.executable, "-c", LAYER_DIGEST, algorithm]
    pinned = subprocess.run([taskset, "-c", "0", *command], capture_output=True, text=True, check=True)
    free = subprocess.run(command, capture_output=True, text=True, check=True)
    one, everyone = pinned.stdout.split(), free.stdout.split()
    assert one[0] == "1"
    assert one[1:] == everyone[1:]
KNOWN_MT_ZSTD = "20ad7091b2b1300382f818cb756ead42833ef55fd1d9bc8c9d9ab79cbc3c1c6c"
