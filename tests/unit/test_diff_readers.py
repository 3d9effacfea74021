"""The readers `xarch diff` and `inspect` share (xarch/diff/sources.py, xarch/diff/layers.py):
every kind of local image becomes the same ImageSource, and a layer is streamed into per-file
records with its blob digest and diff_id checked on the way."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.support.oci_images import EPOCH, make_artifact
from xarch.diff.layers import read_layer
from xarch.diff.sources import open_source, platform_key
from xarch.oci.layout import write_layout, write_oci_archive
from xarch.oci.verified import BlobMismatch


@pytest.fixture
def layout(tmp_path: Path) -> Path:
    write_layout(make_artifact(), tmp_path / "img")
    return tmp_path / "img"


def test_platform_keys_are_os_arch_and_variant() -> None:
    assert platform_key({"os": "linux", "architecture": "arm64", "variant": "v8"}) == "linux/arm64/v8"
    assert platform_key({"os": "linux", "architecture": "amd64"}) == "linux/amd64"


def test_a_layout_and_its_oci_archive_are_the_same_source(tmp_path: Path, layout: Path) -> None:
    write_oci_archive(make_artifact(), tmp_path / "img.tar", EPOCH)
    with open_source(str(layout)) as folder, open_source(f"oci-archive:{tmp_path / 'img.tar'}") as archive:
        assert (folder.kind, archive.kind) == ("oci", "oci-archive")
        assert folder.index_digest == archive.index_digest is not None
        assert [i.platform for i in folder.images] == [i.platform for i in archive.images] == [
            "linux/amd64", "linux/arm64/v8"]
        assert [layer.name for layer in folder.images[0].layers] == ["xarch layer base", "xarch layer app"]


def test_a_layer_is_read_into_records_of_its_files(layout: Path) -> None:
    with open_source(str(layout)) as source:
        base, app = source.images[0].layers
        files = read_layer(app, source.label)
    assert files.order == ["etc", "etc/config", "etc/motd"]
    motd = files.files["etc/motd"]
    assert (motd.type, motd.size, motd.mode, motd.uid, motd.gid) == ("file", 6, 0o644, 0, 0)
    assert motd.mtime == EPOCH
    assert motd.sha256 == "sha256:" + hashlib.sha256(b"hello\n").hexdigest()
    assert motd.fields()["owner"] == "0:0" and motd.fields()["mode"] == "0644"
    assert base.position == 0 and app.position == 1


def test_a_changed_layer_blob_is_refused_while_it_streams(layout: Path) -> None:
    with open_source(str(layout)) as source:
        layer = source.images[0].layers[1]
        blob = layout / "blobs" / "sha256" / layer.digest.removeprefix("sha256:")
        data = bytearray(blob.read_bytes())
        data[-10] ^= 0xFF
        blob.write_bytes(bytes(data))
        with pytest.raises(BlobMismatch):
            read_layer(layer, source.label)
