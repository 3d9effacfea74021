"""The read model (xarch/oci/model.py): an image index, its images and layers read alike from a layout,
an oci-archive, a docker-archive and a build's blobs, every byte checked against its descriptor."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pytest

from tests.support.oci_images import EPOCH, make_artifact
from xarch.oci.dockerarchive import write_docker_archive
from xarch.oci.layout import LayoutError, LayoutReader, write_layout, write_oci_archive
from xarch.oci.model import (
    MAX_MANIFEST_BYTES,
    DockerArchiveSource,
    Image,
    ImageIndex,
    Layer,
    MemorySource,
    images_of,
    layout_top,
)
from xarch.oci.schema import DocumentError
from xarch.oci.tree import Entry
from xarch.oci.verified import BlobMismatch

ARTIFACT = make_artifact()


@pytest.fixture
def layout(tmp_path: Path) -> Path:
    write_layout(ARTIFACT, tmp_path / "img")
    return tmp_path / "img"


def blob_file(root: Path, digest: str) -> Path:
    return root / "blobs" / "sha256" / digest.removeprefix("sha256:")


def set_index_entry(root: Path, **fields: object) -> None:
    top = json.loads((root / "index.json").read_text())
    top["manifests"][0].update(fields)
    (root / "index.json").write_text(json.dumps(top))


def summary(top: ImageIndex | Image) -> list[tuple[str | None, str, list[tuple[str, str | None]]]]:
    return [
        (
            image.digest,
            image.config_descriptor.digest,
            [(layer.digest, layer.diff_id) for layer in image.layers()],
        )
        for image in images_of(top)
    ]


def test_a_layout_and_its_archive_read_as_the_build_wrote_them(tmp_path: Path, layout: Path) -> None:
    write_oci_archive(ARTIFACT, tmp_path / "img.tar", EPOCH)
    expected = [
        (
            image.manifest_descriptor.digest,
            image.config_descriptor.digest,
            [(layer.digest, layer.diff_id) for layer in image.layers],
        )
        for image in ARTIFACT.images
    ]
    for path in (layout, tmp_path / "img.tar"):
        reader = LayoutReader(path)
        try:
            top = layout_top(reader)
            assert isinstance(top, ImageIndex) and top.digest == ARTIFACT.index_descriptor.digest
            assert top.data == ARTIFACT.index_bytes
            assert summary(top) == expected
            arm = top.image_for("linux/arm64/v8")
            assert arm is not None and arm.manifest_bytes == ARTIFACT.images[1].manifest_bytes
            assert arm.config_bytes() == ARTIFACT.images[1].config_bytes
            assert arm.platform == {"architecture": "arm64", "os": "linux", "variant": "v8"}
            assert top.image_for("linux/s390x") is None
        finally:
            reader.close()
    memory = MemorySource(ARTIFACT.blob_sources())
    top = layout_top(LayoutReader(layout))
    assert summary(top) == expected
    from xarch.oci.model import open_descriptor

    assert summary(open_descriptor(memory, ARTIFACT.index_descriptor)) == expected


def test_a_layer_opens_compressed_and_uncompressed_both_checked(layout: Path) -> None:
    image = images_of(layout_top(LayoutReader(layout)))[0]
    base, app = image.layers()
    assert (base.name, app.name, app.position) == ("xarch layer base", "xarch layer app", 1)
    with app.open() as stream:
        assert "sha256:" + hashlib.sha256(stream.read()).hexdigest() == app.digest
    with app.open_uncompressed() as tar:
        data = tar.read()
    assert "sha256:" + hashlib.sha256(data).hexdigest() == app.diff_id
    assert b"etc/motd" in data
    app.verify()


def test_a_docker_archive_reads_as_images_without_a_manifest(tmp_path: Path) -> None:
    built = ARTIFACT.images[0]
    write_docker_archive(built, ["demo:1"], tmp_path / "d.tar", EPOCH)
    reader = LayoutReader(tmp_path / "d.tar")
    try:
        [image] = DockerArchiveSource(reader).images()
        assert image.digest is None and image.config_descriptor.digest == built.config_descriptor.digest
        assert image.platform == {"architecture": "amd64", "os": "linux"}
        layers = image.layers()
        assert [(layer.digest, layer.diff_id) for layer in layers] == [
            (layer.digest, layer.diff_id) for layer in built.layers
        ]
        with layers[1].open_uncompressed() as tar:
            assert "sha256:" + hashlib.sha256(tar.read()).hexdigest() == layers[1].diff_id
    finally:
        reader.close()


def test_a_changed_layer_fails_on_read(layout: Path) -> None:
    layer = images_of(layout_top(LayoutReader(layout)))[0].layers()[1]
    path = blob_file(layout, layer.digest)
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(BlobMismatch, match=f"blob {layer.digest} does not match its digest"):
        layer.verify()


def test_a_longer_config_fails_at_its_declared_size(layout: Path) -> None:
    image = images_of(layout_top(LayoutReader(layout)))[0]
    path = blob_file(layout, image.config_descriptor.digest)
    path.write_bytes(path.read_bytes() + b" ")
    with pytest.raises(BlobMismatch, match="more than the descriptor's"):
        image.config()


def test_a_missing_blob_is_named(layout: Path) -> None:
    image = images_of(layout_top(LayoutReader(layout)))[1]
    blob_file(layout, image.layer_descriptors[0].digest).unlink()
    with pytest.raises(LayoutError, match=f"{layout}: blob {image.layer_descriptors[0].digest} is missing"):
        image.layers()[0].verify()
    blob_file(layout, ARTIFACT.index_descriptor.digest).unlink()
    with pytest.raises(LayoutError, match="is missing"):
        layout_top(LayoutReader(layout))


def test_an_index_entry_pointing_at_a_config_is_not_an_image(layout: Path) -> None:
    config = ARTIFACT.images[0].config_descriptor
    set_index_entry(
        layout, mediaType="application/vnd.oci.image.manifest.v1+json", digest=config.digest, size=config.size
    )
    with pytest.raises(DocumentError, match=f"manifest {config.digest}: not an image manifest"):
        layout_top(LayoutReader(layout))


def test_an_index_entry_pointing_at_a_layer_is_not_json(layout: Path) -> None:
    layer = ARTIFACT.images[0].layers[0]
    set_index_entry(layout, digest=layer.digest, size=layer.size)
    with pytest.raises(DocumentError, match="not JSON"):
        layout_top(LayoutReader(layout))


def test_a_huge_manifest_is_refused_before_it_is_read(layout: Path) -> None:
    set_index_entry(layout, size=MAX_MANIFEST_BYTES + 1)
    with pytest.raises(LayoutError, match=f"more than the {MAX_MANIFEST_BYTES} a document may have"):
        layout_top(LayoutReader(layout))


def test_a_wrong_size_in_the_index_is_a_mismatch(layout: Path) -> None:
    set_index_entry(layout, size=ARTIFACT.index_descriptor.size - 1)
    with pytest.raises(BlobMismatch, match="more than the descriptor's"):
        layout_top(LayoutReader(layout))


def test_a_nested_index_is_refused(layout: Path) -> None:
    # The image index listed as an image of itself's stand-in: an index whose entry is an index.
    top = layout_top(LayoutReader(layout))
    assert isinstance(top, ImageIndex)
    with pytest.raises(LayoutError, match="nested index"):
        top.image(top.descriptor)


def test_the_build_missing_a_blob_is_named() -> None:
    memory = MemorySource({}, "the build")
    with pytest.raises(LayoutError, match="the build: blob sha256:0+ is missing"):
        memory.open_blob("sha256:" + "0" * 64)


def test_a_registry_answer_is_read_as_its_descriptor_says() -> None:
    """The registry source (xarch.registry.source) serves a manifest it already holds without a request,
    and a manifest whose length is not its descriptor's size is the registry's fault (exit 4)."""
    from xarch.oci.digest import Descriptor
    from xarch.oci.model import open_descriptor
    from xarch.registry.client import RegistryClient
    from xarch.registry.errors import CorruptAnswer
    from xarch.registry.reference import parse_reference
    from xarch.registry.source import RegistrySource

    built = ARTIFACT.images[0]
    ref = parse_reference("localhost:1/demo/app:v1")
    source = RegistrySource(
        RegistryClient(ref.api_host), ref, {built.manifest_descriptor.digest: built.manifest_bytes}
    )
    image = open_descriptor(source, built.manifest_descriptor)
    assert isinstance(image, Image) and image.config_descriptor == built.config_descriptor
    assert source.label == "localhost:1/demo/app:v1"
    wrong = Descriptor(built.manifest_descriptor.media_type, built.manifest_descriptor.digest, 3)
    with pytest.raises(
        CorruptAnswer, match=r"localhost:1/demo/app:v1: manifest sha256:\w+ is \d+ bytes"
    ) as caught:
        open_descriptor(source, wrong)
    assert caught.value.exit_code == 4


def _memory_layer(blob: bytes, diff_id: str | None) -> Layer:
    from xarch.oci.digest import OCI_LAYER_GZIP, OCI_LAYER_ZSTD, Descriptor, sha256_digest

    # The media type the blob's bytes are (the model refuses a layer whose bytes are not its type).
    media_type = {b"\x1f\x8b": OCI_LAYER_GZIP, b"\x28\xb5": OCI_LAYER_ZSTD}.get(
        blob[:2], "application/vnd.oci.image.layer.v1.tar")
    descriptor = Descriptor(media_type, sha256_digest(blob), len(blob))
    return Layer(MemorySource({descriptor.digest: blob}), descriptor, diff_id)


@pytest.mark.parametrize("algorithm", ["gzip", "zstd"])
def test_a_layer_is_undone_by_its_first_bytes_and_checked_against_its_diff_id(algorithm: str) -> None:
    from xarch.oci.layer import build_layer

    built = build_layer(
        "x",
        [Entry("etc", "dir", 0o755), Entry("etc/a", "file", 0o644, data=b"a\n" * 9000)],
        EPOCH,
        3,
        algorithm,
    )
    assert built.data is not None
    with _memory_layer(built.data, built.diff_id).open_uncompressed() as tar:
        assert "sha256:" + hashlib.sha256(tar.read()).hexdigest() == built.diff_id
    with pytest.raises(BlobMismatch, match="uncompressed: blob sha256:0{64} does not match its digest"):
        _memory_layer(built.data, "sha256:" + "0" * 64).open_uncompressed().verify()


def test_an_uncompressed_layer_is_its_own_tar() -> None:
    tar = b"not really a tar, but bytes with a diff_id"
    digest = "sha256:" + hashlib.sha256(tar).hexdigest()
    with _memory_layer(tar, digest).open_uncompressed() as stream:
        assert stream.read() == tar


def test_bytes_after_the_gzip_data_are_refused() -> None:
    from xarch.oci.layer import build_layer

    built = build_layer("x", [Entry("a", "file", 0o644, data=b"a")], EPOCH, 3)
    assert built.data is not None
    with pytest.raises(BlobMismatch, match="cannot be read"):
        _memory_layer(built.data + b"junk", built.diff_id).open_uncompressed().verify()


def test_a_docker_archive_naming_a_file_it_lacks_is_one_error(tmp_path: Path) -> None:
    import tarfile

    with tarfile.open(tmp_path / "d.tar", "w") as archive:
        data = json.dumps([{"Config": "c.json", "Layers": ["l.tar"], "RepoTags": []}]).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    reader = LayoutReader(tmp_path / "d.tar")
    try:
        with pytest.raises(
            LayoutError, match="manifest.json names 'c.json', which the archive does not hold"
        ):
            DockerArchiveSource(reader).images()
    finally:
        reader.close()
