"""`xarch push` of an oci-archive, read in place (xarch/oci/filerange.py, xarch/registry/layout_source.py):
the bytes its folder pushes, each blob sent from where it lies in the tar and hashed only when sent;
a compressed archive, or one with a sparse member, is unpacked first as before. Against the real
Debian docker-registry on 127.0.0.1, read back with skopeo."""

from __future__ import annotations

import json
import re
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from tests.support.needs import need_tool
from tests.support.registry import Registry, make_layout
from xarch.oci import layout as layout_module
from xarch.oci.digest import canonical_json, sha256_digest
from xarch.oci.layout import LayoutError, LayoutReader
from xarch.registry import push as push_module
from xarch.registry.client import Settings
from xarch.registry.push import push_layout

MiB = 1024 * 1024


def skopeo_raw(ref: str) -> bytes:
    need_tool("skopeo")
    return subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"],
                          check=True, capture_output=True).stdout


def archive_of(folder: Path, archive: Path, gzip: bool = False) -> Path:
    """FOLDER (an OCI layout) as an oci-archive: a tar of its files, `./`-less names, sorted."""
    with (tarfile.open(archive, "w:gz") if gzip else tarfile.open(archive, "w")) as tar:
        for path in sorted(folder.rglob("*")):
            tar.add(path, arcname=path.relative_to(folder).as_posix(), recursive=False)
    return archive


def no_unpacking(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("the archive was unpacked")

    monkeypatch.setattr(push_module, "layout_folder", refuse)


def test_an_oci_archive_pushes_in_place_the_bytes_its_folder_pushes(
        registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Blobs are sent from the tar, in 1 MiB chunks for the big layer (seek and read of a range),
    never unpacked; a re-push hashes no blob it does not send."""
    layout = make_layout(tmp_path / "layout", ["amd64", "arm64"], big_layer=3 * MiB + 123)
    archive = archive_of(layout.path, tmp_path / "image.tar")
    no_unpacking(monkeypatch)
    opened: list[Path] = []
    open_archive = layout_module.open_archive

    def opening(path: Path) -> Any:
        opened.append(path)
        return open_archive(path)

    monkeypatch.setattr(layout_module, "open_archive", opening)
    chunks: list[int] = []
    result = push_layout(archive, f"{registry.host}/demo/tar", settings=Settings(chunk_size=MiB),
                         on_chunk=lambda _digest, offset: chunks.append(offset))
    assert skopeo_raw(f"{registry.host}/demo/tar:v1") == layout.index_bytes
    assert result.stats.bytes_sent == layout.blob_bytes
    assert len([c for c in chunks if c % MiB == 0]) >= 3  # the big layers went in chunks
    # Its headers read twice (the image, its attachments), not again for each of its 7 blobs.
    assert opened == [archive, archive]
    for name, manifest in layout.manifests.items():
        assert skopeo_raw(f"{registry.host}/demo/tar@{result.manifests[f'linux/{name}']}") == manifest

    hashed: list[str] = []
    verify = LayoutReader.verify_blob

    def counted(self: LayoutReader, digest: str, size: int | None = None) -> None:
        hashed.append(digest)
        verify(self, digest, size)

    monkeypatch.setattr(LayoutReader, "verify_blob", counted)
    again = push_layout(archive, f"{registry.host}/demo/tar")
    assert again.stats.bytes_sent == 0 and again.digest == result.digest
    assert hashed == []


def test_a_compressed_oci_archive_is_unpacked_and_pushes_the_same_bytes(registry: Registry,
                                                                         tmp_path: Path) -> None:
    """Unpacked to a scratch folder first; an error about it names the archive, not that folder."""
    layout = make_layout(tmp_path / "layout", ["amd64"])
    archive = archive_of(layout.path, tmp_path / "image.tar.gz", gzip=True)
    result = push_layout(archive, f"{registry.host}/demo/targz")
    assert skopeo_raw(f"{registry.host}/demo/targz:v1") == layout.index_bytes
    assert result.stats.bytes_sent == layout.blob_bytes
    victim = min(layout.blob_sizes)
    blob = layout.path / "blobs" / "sha256" / victim.removeprefix("sha256:")
    blob.write_bytes(blob.read_bytes()[:-1] + b"!")
    broken = archive_of(layout.path, tmp_path / "broken.tar.gz", gzip=True)
    with pytest.raises(LayoutError) as caught:
        push_layout(broken, f"{registry.host}/demo/targz-broken")
    assert str(caught.value).startswith(f"{broken}: blob {victim} does not match"), caught.value
    assert "xarch-push-" not in str(caught.value)


def one_image_layout(folder: Path, layer: bytes, sparse_layer: bool) -> tuple[bytes, str]:
    """A layout of one image whose layer is LAYER, written with a hole when SPARSE_LAYER (so that
    GNU tar --sparse stores it as a sparse member); (index.json's index bytes, layer digest)."""
    blobs = folder / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes, sparse: bool = False) -> dict[str, Any]:
        digest = sha256_digest(data)
        path = blobs / digest.removeprefix("sha256:")
        if sparse:
            start = len(data) - len(data.lstrip(b"\0"))
            with path.open("wb") as handle:
                handle.seek(start)  # leading zeros as a hole
                handle.write(data[start:])
        else:
            path.write_bytes(data)
        return {"digest": digest, "size": len(data)}

    config = put(canonical_json({"architecture": "amd64", "os": "linux", "config": {},
                                 "rootfs": {"type": "layers", "diff_ids": [sha256_digest(layer)]}}))
    layer_descriptor = put(layer, sparse_layer)
    manifest = canonical_json({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", **layer_descriptor}]})
    manifest_descriptor = put(manifest)
    index = canonical_json({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                            "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                           **manifest_descriptor,
                                           "platform": {"architecture": "amd64", "os": "linux"}}]})
    index_descriptor = put(index)
    (folder / "index.json").write_bytes(canonical_json({
        "schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.index.v1+json",
                                           **index_descriptor,
                                           "annotations": {"org.opencontainers.image.ref.name": "v1"}}]}))
    (folder / "oci-layout").write_bytes(b'{"imageLayoutVersion":"1.0.0"}')
    return index, layer_descriptor["digest"]


def test_an_oci_archive_with_a_sparse_member_is_unpacked_and_pushes_the_same_bytes(
        registry: Registry, tmp_path: Path) -> None:
    """A member GNU tar stored sparse is not one run of the file: the push unpacks the archive."""
    tar = need_tool("tar")
    layer = b"\0" * (2 * MiB) + b"a layer with a hole before it"
    index, digest = one_image_layout(tmp_path / "layout", layer, sparse_layer=True)
    archive = tmp_path / "sparse.tar"
    subprocess.run([tar, "--sparse", "--format=gnu", "-C", str(tmp_path / "layout"), "-cf", str(archive),
                    "oci-layout", "index.json", "blobs"], check=True)
    with tarfile.open(archive) as opened:
        assert opened.getmember(f"blobs/sha256/{digest[7:]}").issparse()  # what the test is about
    result = push_layout(archive, f"{registry.host}/demo/sparse")
    assert skopeo_raw(f"{registry.host}/demo/sparse:v1") == index
    assert result.stats.bytes_sent >= len(layer)


def test_an_oci_archive_cut_inside_a_blob_is_one_line_and_nothing_is_written(
        registry: Registry, tmp_path: Path) -> None:
    layout = make_layout(tmp_path / "layout", ["amd64"], big_layer=MiB)
    archive = archive_of(layout.path, tmp_path / "image.tar")
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(LayoutError, match=r"truncated"):
        push_layout(archive, f"{registry.host}/demo/cut")
    assert not re.search(r'"(POST|PUT|PATCH|DELETE) /v2/demo/cut', registry.log.read_text())


def test_an_oci_archive_with_a_flipped_layer_byte_sends_no_manifest(registry: Registry,
                                                                      tmp_path: Path) -> None:
    """The layer is hashed before it is sent, so the push ends before any manifest or tag: exit 2
    naming the blob (the folder's rule: only questions were asked)."""
    layout = make_layout(tmp_path / "layout", ["amd64"], big_layer=MiB)
    archive = archive_of(layout.path, tmp_path / "image.tar")
    big = max(layout.blob_sizes, key=lambda d: layout.blob_sizes[d])
    with tarfile.open(archive) as opened:
        offset = opened.getmember(f"blobs/sha256/{big[7:]}").offset_data
    data = bytearray(archive.read_bytes())
    data[offset + 1000] ^= 1
    archive.write_bytes(bytes(data))
    with pytest.raises(LayoutError) as caught:
        push_layout(archive, f"{registry.host}/demo/flipped")
    assert big in str(caught.value) and "\n" not in str(caught.value)
    assert not re.search(r'"(POST|PUT|PATCH|DELETE) /v2/demo/flipped', registry.log.read_text())
    assert json.loads((layout.path / "index.json").read_bytes())  # the folder itself is untouched


@pytest.mark.parametrize("kind", ["folder", "archive"])
def test_a_blob_changed_after_its_check_is_the_input_s_fault(
        registry: Registry, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    """A layer's bytes change between its check and its upload: the registry refuses the upload
    (DIGEST_INVALID); the push checks the blob again and ends with exit 2 naming it, not with the
    registry's answer (exit 4). No manifest or tag is written."""
    from xarch.registry.push_source import LayoutSource

    layout = make_layout(tmp_path / "layout", ["amd64"], big_layer=MiB)
    source = layout.path if kind == "folder" else archive_of(layout.path, tmp_path / "image.tar")
    big = max(layout.blob_sizes, key=lambda d: layout.blob_sizes[d])
    check = LayoutSource.verify
    flipped: list[str] = []

    def check_then_change(self: LayoutSource, descriptor: dict[str, Any]) -> None:
        check(self, descriptor)
        if descriptor["digest"] == big and not flipped:
            flipped.append(big)
            if kind == "folder":
                path, offset = layout.path / "blobs" / "sha256" / big.removeprefix("sha256:"), 1000
            else:
                with tarfile.open(source) as opened:
                    path = source
                    offset = opened.getmember(f"blobs/sha256/{big[7:]}").offset_data + 1000
            data = bytearray(path.read_bytes())
            data[offset] ^= 1
            path.write_bytes(bytes(data))

    monkeypatch.setattr(LayoutSource, "verify", check_then_change)
    with pytest.raises(LayoutError) as caught:
        push_layout(source, f"{registry.host}/demo/changed-{kind}")
    assert flipped == [big]
    assert big in str(caught.value) and "does not match" in str(caught.value), caught.value
    assert not re.search(r'"PUT /v2/demo/changed-[a-z]+/manifests', registry.log.read_text())


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind", ["folder", "archive"])
def test_a_blob_cut_short_during_a_chunked_upload_is_one_line_not_a_hang(
        registry: Registry, tmp_path: Path, kind: str) -> None:
    """The big layer's file is cut in half after its first chunk was sent: the push stops with
    exit 2 naming the file (it sent empty chunks for ever before), and no manifest is written."""
    from xarch.errors import InputError

    layout = make_layout(tmp_path / "layout", ["amd64"], big_layer=4 * MiB)
    source = layout.path if kind == "folder" else archive_of(layout.path, tmp_path / "image.tar")
    big = max(layout.blob_sizes, key=lambda d: layout.blob_sizes[d])
    victim = layout.path / "blobs" / "sha256" / big.removeprefix("sha256:") if kind == "folder" else source

    def cut(digest: str, offset: int) -> None:
        if digest == big and offset == MiB:
            with victim.open("r+b") as handle:
                handle.truncate(victim.stat().st_size - 3 * MiB)

    with pytest.raises(InputError) as caught:
        push_layout(source, f"{registry.host}/demo/cut-{kind}", settings=Settings(chunk_size=MiB, jobs=1),
                    on_chunk=cut)
    assert str(victim) in str(caught.value) and "\n" not in str(caught.value), caught.value
    assert not re.search(r'"PUT /v2/demo/cut-[a-z]+/manifests', registry.log.read_text())
