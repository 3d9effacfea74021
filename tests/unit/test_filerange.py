"""A byte range of a file read as a file of its own (xarch/oci/filerange.py): what a push reads of
a blob inside an uncompressed oci-archive. tests/integration/test_push_archive.py pushes with it."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from xarch.oci.filerange import FileRange, RangeError
from xarch.oci.layout import LayoutReader

DATA = bytes(range(256)) * 40  # 10,240 bytes


def test_a_range_reads_its_bytes_and_no_others(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_bytes(DATA)
    span = FileRange(path, 1000, 5000)
    assert span.read_bytes() == DATA[1000:6000]
    with span.open("rb") as handle:
        assert handle.read(10) == DATA[1000:1010]
        assert handle.tell() == 10
        handle.seek(4990)
        assert handle.read(100) == DATA[5990:6000]  # what is left, then nothing
        assert handle.read(100) == b""
        handle.seek(-3, io.SEEK_END)
        assert handle.read() == DATA[5997:6000]
        handle.seek(2, io.SEEK_SET)
        handle.seek(3, io.SEEK_CUR)
        assert handle.read(1) == DATA[1005:1006]
        with pytest.raises(ValueError):
            handle.seek(-1)
    assert FileRange(path, 10, 0).read_bytes() == b""


def test_a_file_cut_short_inside_the_range_is_an_error_not_short_bytes(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_bytes(DATA)
    span = FileRange(path, 10_000, 1000)
    message = r"ends at byte 10240, inside a member of 1000 bytes from byte 10000"
    with pytest.raises(RangeError, match=message):
        span.read_bytes()
    with span.open() as handle, pytest.raises(RangeError):
        handle.read(500)
    with pytest.raises(ValueError):
        span.open("wb")


def test_a_range_is_the_member_a_tar_reader_reads(tmp_path: Path) -> None:
    """LayoutReader.blob_range of an uncompressed oci-archive is the member tarfile extracts; a
    compressed archive has none (its bytes are not in the file as they are)."""
    blob = DATA * 3
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    for ranged in (True, False):
        archive = tmp_path / f"a-{ranged}.tar"
        with tarfile.open(archive, "w") if ranged else tarfile.open(archive, "w:gz") as tar:
            for name, data in (("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'), ("index.json", b"{}"),
                               (f"blobs/sha256/{digest[7:]}", blob)):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        reader = LayoutReader(archive)
        try:
            span = reader.blob_range(digest)
            assert reader.blob_size(digest) == len(blob)
        finally:
            reader.close()
        if ranged:
            assert span is not None and span.read_bytes() == blob
        else:
            assert span is None
