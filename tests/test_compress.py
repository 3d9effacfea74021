"""The pinned gzip (xarch/oci/compress.py): fixed header bytes, readable by GNU gzip, stable."""

from __future__ import annotations

import io
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import need_tool
from xarch.oci.compress import GZIP_HEADER, compressor_id, gunzip_bytes, gzip_bytes
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
    assert gunzip_bytes(blob) == tar
    # `gzip -t` also checks the CRC32 and size trailer.
    check = subprocess.run([need_tool("gzip"), "-t"], input=blob, capture_output=True, check=False)
    assert check.returncode == 0, check.stderr.decode()


def test_same_bytes_on_repeated_calls() -> None:
    tar = sample_tar()
    blobs = {gzip_bytes(tar) for _ in range(5)}
    assert len(blobs) == 1
    assert gzip_bytes(bytearray(tar)) == blobs.pop()


@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=20_000), level=st.integers(1, 12))
def test_round_trip_any_bytes(data: bytes, level: int) -> None:
    blob = gzip_bytes(data, level)
    assert blob[:10] == FIXED_HEADER
    assert gzip_bytes(data, level) == blob
    assert gunzip_bytes(blob) == data


def test_known_bytes_do_not_drift() -> None:
    """A pinned libdeflate gives these exact bytes on every host; a change here changes every digest."""
    import hashlib

    blob = gzip_bytes(sample_tar(), 6)
    assert hashlib.sha256(blob).hexdigest() == KNOWN_SHA256


def test_levels_out_of_range_are_refused() -> None:
    for level in (0, 13):
        with pytest.raises(ValueError, match="1..12"):
            gzip_bytes(b"x", level)


def test_compressor_is_recorded_with_its_pinned_version() -> None:
    assert compressor_id(6) == "gzip (libdeflate via deflate==0.9.0) level 6"


KNOWN_SHA256 = "53d93312ff9758b30b566168d3315989d39ec317546d323c6b0b66850373e117"
