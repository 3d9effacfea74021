"""One read model of an OCI image, whatever holds its bytes (go-containerregistry's v1.ImageIndex,
v1.Image and v1.Layer): descriptors, with the bytes behind them opened only when asked for.

A `BlobSource` opens a blob by digest as a stream checked against its descriptor (xarch.oci.verified:
never more than `size` bytes read, the sha256 checked at EOF). Sources: an OCI layout folder or
oci-archive (xarch.oci.layout.LayoutReader), a docker-archive (`DockerArchiveSource`), the build's
blobs in memory or in the store (`MemorySource`), a registry (xarch.registry.source). On top of any
source, `ImageIndex` lists manifests (by platform), `Image` opens a manifest, its config and its
layers, and `Layer` opens its compressed or uncompressed stream. `layout_top` is the one way to
read the image of a layout (its index.json entry chosen by xarch.oci.layout.image_entry).

Hostile input: a descriptor's fields are checked before use; a manifest or index larger than
MAX_MANIFEST_BYTES (a config larger than MAX_CONFIG_BYTES) is refused before a byte is read; every
byte read is checked against its descriptor; JSON documents are checked against their shape
(xarch.oci.schema). Errors are one line naming the source and the blob (exit 2; what a registry
answered, exit 4).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Protocol

from xarch.oci.digest import DOCKER_MANIFEST_LIST, OCI_INDEX, Descriptor, platform_name
from xarch.oci.layout import IMAGE_ENTRY_TYPES, MAX_DOCUMENT_BYTES, LayoutError, LayoutReader, image_entry
from xarch.oci.verified import CHUNK, SHA256, BadDescriptor, BlobMismatch, VerifiedStream

INDEX_TYPES = (OCI_INDEX, DOCKER_MANIFEST_LIST)
MAX_MANIFEST_BYTES = MAX_DOCUMENT_BYTES  # 4 MiB: the distribution registry's own limit for a manifest
MAX_CONFIG_BYTES = 256 * 1024 * 1024  # as xarch.registry.client reads a small blob
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class BlobSource(Protocol):
    """Where an image's bytes live; `label` names it in every message."""

    @property
    def label(self) -> str:
        """The source as the user named it (a path, a reference, "the build")."""
        ...

    def open_blob(self, digest: str, size: int | None = None) -> VerifiedStream:
        """A stream of blob DIGEST that raises once its bytes prove not to be DIGEST of SIZE bytes.
        An error naming the source when the blob is missing."""
        ...

    def read_manifest(self, digest: str, size: int | None = None) -> bytes:
        """The bytes of manifest or index DIGEST (a registry serves them apart from blobs), verified."""
        ...


def read_blob(source: BlobSource, descriptor: Descriptor, limit: int) -> bytes:
    """All bytes of DESCRIPTOR's blob from SOURCE, verified; LayoutError (exit 2) before reading when its
    size is over LIMIT bytes."""
    _bound(source, descriptor, limit)
    with source.open_blob(descriptor.digest, descriptor.size) as stream:
        data = stream.read()
        stream.verify()
    return data


def _bound(source: BlobSource, descriptor: Descriptor, limit: int) -> None:
    if descriptor.size > limit:
        raise LayoutError(
            f"{source.label}: blob {descriptor.digest} is {descriptor.size} bytes, more than "
            f"the {limit} a document may have"
        )


def _document(data: bytes, where: str, kind: str) -> dict[str, Any]:
    from xarch.oci.schema import parse_document  # pydantic: loaded only when a document is read

    return dict(parse_document(data, where, kind))  # type: ignore[arg-type]


class Layer:
    """One layer: its blob DESCRIPTOR (digest, size, media type), its DIFF_ID from the config (None when
    the config has none for it), its history NAME (created_by, "" when none) and its 0-based POSITION."""

    def __init__(
        self,
        source: BlobSource,
        descriptor: Descriptor,
        diff_id: str | None,
        name: str = "",
        position: int = 0,
    ) -> None:
        self.source, self.descriptor, self.diff_id = source, descriptor, diff_id
        self.name, self.position = name, position

    @property
    def digest(self) -> str:
        return self.descriptor.digest

    @property
    def size(self) -> int:
        return self.descriptor.size

    def open(self) -> VerifiedStream:
        """The compressed blob as stored, verified as it streams (digest and size)."""
        return self.source.open_blob(self.descriptor.digest, self.descriptor.size)

    def read(self) -> bytes:
        """The whole compressed blob in memory, verified (small layers; streams are for the rest)."""
        with self.open() as stream:
            data = stream.read()
            stream.verify()
        return data

    def verify(self) -> None:
        """Hash the whole blob without keeping it; BlobMismatch (exit 2) when it differs."""
        with self.open() as stream:
            stream.verify()

    def open_uncompressed(self) -> VerifiedStream:
        """The layer's tar (gzip or zstd undone, told by the blob's first bytes), checked against the
        diff_id (when the config has one) and the compressed blob against its descriptor, both at the
        tar's EOF or on verify(). A blob that does not decompress raises BlobMismatch naming it."""
        raw = self.open()
        head = raw.read(4)
        _check_compression(self.descriptor.media_type, head,
                           f"{self.source.label}: layer {self.position} ({self.descriptor.digest})")
        compressed: IO[bytes] = io.BufferedReader(_Prefixed(head, raw), CHUNK)
        tar: IO[bytes] = compressed
        if head[:2] == b"\x1f\x8b":
            from xarch.oci.compress import GzipMembers  # not loaded by readers of other blobs

            tar = io.BufferedReader(GzipMembers(compressed), CHUNK)
        elif head == _ZSTD_MAGIC:  # every frame: xarch writes one per 1 MiB chunk (xarch.oci.compress)
            tar = io.BufferedReader(_Zstd(compressed), CHUNK)
        diff_id = self.diff_id if self.diff_id and SHA256.fullmatch(self.diff_id) else None
        where = f"{self.source.label}: layer {self.position} ({self.descriptor.digest}) uncompressed"
        return _LayerTar(tar, raw, diff_id, where)


_MAGIC = {"gzip": b"\x1f\x8b", "zstd": _ZSTD_MAGIC}


def _check_compression(media_type: str, head: bytes, where: str) -> None:
    """BlobMismatch (exit 2) unless HEAD, a layer blob's first bytes, is the compression MEDIA_TYPE
    names (+gzip, +zstd, or a plain tar); an empty or foreign media type (a docker-archive's) says
    nothing. A consumer decompresses by the media type, so zstd bytes under +gzip must not pass."""
    named = next((kind for kind in _MAGIC if media_type.endswith(kind)), None)
    found = next((kind for kind, magic in _MAGIC.items() if head.startswith(magic)), None)
    if (named or media_type.endswith("tar")) and named != found:
        raise BlobMismatch(f"{where}: its media type {media_type} says {named or 'an uncompressed tar'}, "
                           f"its bytes are {found or 'neither gzip nor zstd'}")


class _LayerTar(VerifiedStream):
    """A layer's tar, checked against the diff_id; at its end the compressed BLOB is read to its end
    and checked too (trailing bytes after the compressed data count as a mismatch)."""

    def __init__(self, tar: IO[bytes], blob: VerifiedStream, diff_id: str | None, where: str) -> None:
        super().__init__(tar, diff_id, None, where)
        self.blob = blob

    def read(self, n: int | None = -1) -> bytes:
        data = super().read(n)
        if not data and n != 0:
            self.blob.verify()
        return data

    def verify(self) -> None:
        super().verify()
        self.blob.verify()

    def close(self) -> None:
        super().close()
        self.blob.close()


class _Prefixed(io.RawIOBase):
    """HEAD, then the rest of STREAM: a blob whose first bytes were read to tell its compression."""

    def __init__(self, head: bytes, stream: VerifiedStream) -> None:
        self.head, self.stream = head, stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.head[: len(buffer)] if self.head else self.stream.read(len(buffer))
        self.head = self.head[len(data) :] if self.head else b""
        buffer[: len(data)] = data
        return len(data)


class _Zstd(io.RawIOBase):
    """A zstd stream undone, its errors as OSError (which VerifiedStream reports as one line)."""

    def __init__(self, compressed: IO[bytes]) -> None:
        import zstandard

        self.error = zstandard.ZstdError
        self.reader = zstandard.ZstdDecompressor().stream_reader(compressed, read_across_frames=True)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            data = self.reader.read(len(buffer))
        except self.error as error:
            raise OSError(f"zstd: {error}") from None
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self.reader.close()
        super().close()


class Image:
    """One platform's image: its manifest DESCRIPTOR (None for a docker-archive, which stores none), the
    manifest's bytes and parsed JSON, the config descriptor; the config and layers opened on demand.
    PLATFORM is the index entry's, else taken from the config."""

    def __init__(
        self,
        source: BlobSource,
        descriptor: Descriptor | None,
        manifest_bytes: bytes | None,
        manifest: dict[str, Any],
        config_bytes: bytes | None = None,
    ) -> None:
        self.source, self.descriptor = source, descriptor
        self.manifest_bytes, self.manifest = manifest_bytes, manifest
        where = f"{source.label}: manifest {descriptor.digest if descriptor else ''}".rstrip()
        self.config_descriptor = Descriptor.from_json(manifest.get("config"), where)
        layers = manifest.get("layers")
        if not isinstance(layers, list):
            raise BadDescriptor(f"{where}: layers is not a JSON array")
        self.layer_descriptors = [Descriptor.from_json(layer, where) for layer in layers]
        self._config_bytes = config_bytes
        self._config: dict[str, Any] | None = None

    @property
    def digest(self) -> str | None:
        return self.descriptor.digest if self.descriptor else None

    def verify(self) -> None:
        """Read the config and hash every layer blob against its descriptor, keeping nothing but the
        config; BlobMismatch/LayoutError (exit 2) on the first that differs or is missing."""
        self.config_bytes()
        for descriptor in self.layer_descriptors:
            with self.source.open_blob(descriptor.digest, descriptor.size) as stream:
                stream.verify()

    def config_bytes(self) -> bytes:
        """The config blob, read (verified) once."""
        if self._config_bytes is None:
            self._config_bytes = read_blob(self.source, self.config_descriptor, MAX_CONFIG_BYTES)
        return self._config_bytes

    def config(self) -> dict[str, Any]:
        """The config parsed and checked (OCI config.md: rootfs.diff_ids digests, history objects)."""
        if self._config is None:
            where = f"{self.source.label}: config {self.config_descriptor.digest}"
            self._config = _document(self.config_bytes(), where, "config")
        return self._config

    @property
    def platform(self) -> dict[str, Any]:
        """{os, architecture, variant?} of the index entry, else of the config."""
        if self.descriptor is not None and self.descriptor.platform:
            return dict(self.descriptor.platform)
        config = self.config()
        return {key: config[key] for key in ("os", "architecture", "variant") if config.get(key)}

    def layers(self) -> list[Layer]:
        """The layers in manifest order, each with its diff_id and history name from the config."""
        config = self.config()
        diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
        history = config.get("history") or []
        names = [str(h.get("created_by", "")) for h in history if not h.get("empty_layer")]
        return [
            Layer(
                self.source,
                descriptor,
                diff_ids[n] if n < len(diff_ids) else None,
                names[n] if n < len(names) else "",
                n,
            )
            for n, descriptor in enumerate(self.layer_descriptors)
        ]


class ImageIndex:
    """An image index: its DESCRIPTOR, exact bytes and parsed JSON; `manifests` lists the entries and
    `image` opens one (nested indexes are refused: xarch neither writes nor reads them)."""

    def __init__(
        self, source: BlobSource, descriptor: Descriptor, data: bytes, index: dict[str, Any]
    ) -> None:
        self.source, self.descriptor, self.data, self.index = source, descriptor, data, index

    @property
    def digest(self) -> str:
        return self.descriptor.digest

    def manifests(self) -> list[Descriptor]:
        """The index's entries, each descriptor checked."""
        where = f"{self.source.label}: index {self.digest}"
        return [Descriptor.from_json(entry, where) for entry in self.index.get("manifests") or []]

    def image(self, descriptor: Descriptor) -> Image:
        """The image entry DESCRIPTOR names; LayoutError (exit 2) for a nested index."""
        top = open_descriptor(self.source, descriptor)
        if isinstance(top, ImageIndex):
            raise LayoutError(f"{self.source.label}: nested index {descriptor.digest} is not supported")
        return top

    def images(self) -> Iterator[Image]:
        """Every image of the index, in its order, opened one at a time."""
        for descriptor in self.manifests():
            yield self.image(descriptor)

    def image_for(self, platform: str) -> Image | None:
        """The image whose entry's platform is PLATFORM ("linux/arm64/v8"), None when none is."""
        for descriptor in self.manifests():
            if descriptor.platform and platform_name(descriptor.platform) == platform:
                return self.image(descriptor)
        return None


def open_descriptor(source: BlobSource, descriptor: Descriptor) -> ImageIndex | Image:
    """The index or image manifest DESCRIPTOR names in SOURCE, read and checked to be one.

    LayoutError/BlobMismatch/DocumentError (exit 2) name the source and the digest.
    """
    _bound(source, descriptor, MAX_MANIFEST_BYTES)
    data = source.read_manifest(descriptor.digest, descriptor.size)
    where = f"{source.label}: manifest {descriptor.digest}"
    parsed = _document(data, where, "image")
    _check_media_type(parsed, descriptor, where)
    if "manifests" in parsed:
        return ImageIndex(
            source, descriptor, data, _document(data, f"{source.label}: index {descriptor.digest}", "index")
        )
    return Image(source, descriptor, data, parsed)


def _check_media_type(document: dict[str, Any], descriptor: Descriptor, where: str) -> None:
    """LayoutError unless DOCUMENT is what its DESCRIPTOR says: its own mediaType (when present) is the
    descriptor's (when it has one), an OCI or Docker v2 index or image manifest (anything else, a
    schema1 manifest or text/plain, no registry takes as an image), and an index exactly when it
    has `manifests` (OCI image spec, descriptor.md and image-index.md)."""
    own = document.get("mediaType")
    if own is not None and not isinstance(own, str):
        raise LayoutError(f"{where}: mediaType is not a string")
    declared = descriptor.media_type
    if own and declared and own != declared:
        raise LayoutError(f"{where}: its mediaType {own!r} differs from its descriptor's {declared!r}")
    media_type = own or declared
    if not media_type:
        return
    if media_type not in IMAGE_ENTRY_TYPES:
        raise LayoutError(
            f"{where}: mediaType {media_type!r} is not an OCI or Docker v2 image index or manifest"
        )
    if (media_type in INDEX_TYPES) != ("manifests" in document):
        shape = "an index" if "manifests" in document else "a manifest"
        raise LayoutError(f"{where}: mediaType {media_type!r} names what is {shape}")


def images_of(top: ImageIndex | Image) -> list[Image]:
    """The images under TOP: those of an index, or the one image."""
    return list(top.images()) if isinstance(top, ImageIndex) else [top]


def layout_top(reader: LayoutReader, tag: str | None = None) -> ImageIndex | Image:
    """The image of the layout or oci-archive READER reads: its index.json entry named TAG, else the first
    index or manifest that is no artifact (xarch.oci.layout.image_entry), opened."""
    top = reader.top_index()
    entry = image_entry(top, f"{reader.label}: index.json", tag)
    return open_descriptor(reader, Descriptor.from_json(entry, f"{reader.label}: index.json"))


class MemorySource:
    """Blobs a build holds: {digest: bytes, or the store file holding them} (Artifact.blob_sources);
    read through the same checks as any other source."""

    def __init__(self, blobs: dict[str, bytes | Path], label: str = "the build") -> None:
        self.blobs, self._label = blobs, label

    @property
    def label(self) -> str:
        return self._label

    def open_blob(self, digest: str, size: int | None = None) -> VerifiedStream:
        """A verified stream of blob DIGEST; LayoutError (exit 2) when the build has none."""
        held = self.blobs.get(digest)
        if held is None:
            raise LayoutError(f"{self._label}: blob {digest} is missing")
        raw: IO[bytes] = io.BytesIO(held) if isinstance(held, bytes) else held.open("rb")
        return VerifiedStream(raw, digest, size, self._label)

    def read_manifest(self, digest: str, size: int | None = None) -> bytes:
        """The bytes of manifest DIGEST, verified."""
        with self.open_blob(digest, size) as stream:
            data = stream.read()
            stream.verify()
        return data


class DockerArchiveSource:
    """A docker-archive (`docker save` before Docker 25): manifest.json names each image's config and
    layer files. Every file is hashed against its content address when the archive is opened
    (LayoutReader.docker_file), then served by that digest."""

    def __init__(self, reader: LayoutReader) -> None:
        self.reader = reader
        self.paths: dict[str, str] = {}

    @property
    def label(self) -> str:
        return self.reader.label

    def open_blob(self, digest: str, size: int | None = None) -> VerifiedStream:
        """A verified stream of the file that hashed to DIGEST; LayoutError when the archive has none."""
        path = self.paths.get(digest)
        if path is None:
            raise LayoutError(f"{self.label}: blob {digest} is missing")
        return VerifiedStream(self.reader.open(path), digest, size, f"{self.label}: {path}")

    def read_manifest(self, digest: str, size: int | None = None) -> bytes:
        """A docker-archive stores no manifest: LayoutError."""
        raise LayoutError(f"{self.label}: a docker-archive stores no manifest {digest}")

    def images(self) -> list[Image]:
        """One Image per manifest.json entry (no manifest descriptor; layer media types empty)."""
        items = _docker_items(self.reader)
        images = []
        for item in items:
            config_path = item["Config"]
            config_digest, config_size = self.reader.docker_file(config_path)
            self.paths[config_digest] = config_path
            config_bytes = self.reader.read(config_path, MAX_CONFIG_BYTES)
            config = _document(config_bytes, f"{self.label}: {config_path}", "config")
            diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
            layers = []
            for n, path in enumerate(item["Layers"]):
                digest, size = self.reader.docker_file(path, diff_ids[n] if n < len(diff_ids) else None)
                self.paths[digest] = path
                layers.append({"mediaType": "", "digest": digest, "size": size})
            manifest = {
                "config": {"mediaType": "", "digest": config_digest, "size": config_size},
                "layers": layers,
            }
            images.append(Image(self, None, None, manifest, config_bytes))
        return images


def _docker_items(reader: LayoutReader) -> list[dict[str, Any]]:
    from xarch.oci.schema import parse_document

    items = parse_document(reader.read("manifest.json"), f"{reader.label}: manifest.json", "docker-manifest")
    if not items:
        raise LayoutError(f"{reader.label}: manifest.json names no image")
    return list(items)
