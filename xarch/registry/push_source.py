"""What a push sends, and where its bytes come from: an OCI layout, or a build's Artifact in the store.

xarch.registry.push has one code path for both; a source answers four questions:

- `image`: the top (an index, or one manifest) and the manifests under it, as exact bytes that
  have been checked against their digests (a LayoutImage);
- `blob(digest)`: the file holding a config or layer, where it lies in an oci-archive, or its bytes;
- `verify(descriptor)`: called for every blob before it is uploaded (never for one the registry
  already has); raises when the bytes are not the descriptor's;
- `attachments()`: the SBOMs and provenance that go with the image (xarch.oci.artifact).

A layout is user input, hostile until checked: its index and manifests are hashed when read,
every blob is checked to exist with its size, and a blob is hashed before it is sent. A blob the
registry already has is not read at all: nothing of it is sent, and what the registry holds under
that digest it checked itself when it was uploaded (distribution-spec: a blob upload is refused
unless its content has the digest it is PUT under). An Artifact's blobs were hashed by the build
that made them (a layer entered the store only after its sha256 was checked; configs and
manifests are digested from the bytes in memory), so they are sent without hashing them again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xarch.registry.layout_source import (
    LayoutImage,
    Manifest,
    read_file,
    read_layout,
    read_range,
    verify_file,
)

if TYPE_CHECKING:  # `xarch push` need not import the build's side
    from xarch.oci.artifact import Attachment
    from xarch.oci.filerange import FileRange
    from xarch.oci.layout import Artifact


class PushSource:
    """The input of a push (see the module docstring); LayoutSource and ArtifactSource implement it."""

    image: LayoutImage
    label: str  # names the source in error messages: the layout's path, or "the build"

    def blob(self, digest: str) -> Path | FileRange | bytes:
        """The file holding blob DIGEST (a config or layer of `image`), the range of a file it
        lies in, or its bytes."""
        raise NotImplementedError

    def verify(self, descriptor: dict[str, Any]) -> None:
        """Raise (exit 2) unless blob DESCRIPTOR's bytes have its digest and size; before an upload."""
        raise NotImplementedError

    def read(self, descriptor: dict[str, Any]) -> bytes:
        """The bytes of a small blob (a config), checked against DESCRIPTOR as `verify` would."""
        raise NotImplementedError

    def attachments(self) -> list[Attachment]:
        """Attachments (artifact manifests with a subject) that go with the image, each verified."""
        raise NotImplementedError


class LayoutSource(PushSource):
    """An OCI layout folder, or an uncompressed oci-archive read in place (its blobs sent from
    where they lie in it): the entry named TAG (else the first).

    With HASH_ALL False, configs and layers are only stat()ed here and hashed when sent (see the
    module docstring). With HASH_ALL True every blob is hashed now, before the registry is asked
    anything: for an oci-archive unpacked first (layout_folder), whose every byte was just read.
    NotInPlace (a LayoutError) for an oci-archive whose blobs are not each one run of the file.
    """

    def __init__(self, folder: Path, tag: str | None = None, hash_all: bool = False) -> None:
        self.folder = folder
        self.label = str(folder)
        self.hashed = hash_all
        self.image = read_layout(folder, tag, hash_blobs=hash_all)

    def blob(self, digest: str) -> Path | FileRange:
        """The layout's file of blob DIGEST (blobs/sha256/<hex>), or where it lies in the archive."""
        if digest in self.image.ranges:
            return self.image.ranges[digest]
        return self.image.blob_path(digest)

    def verify(self, descriptor: dict[str, Any]) -> None:
        """Hash the blob file (or its range of the archive) against DESCRIPTOR unless the whole
        layout was hashed when read; LayoutError/BlobMismatch (exit 2) on a mismatch."""
        if self.hashed:
            return
        span = self.image.ranges.get(str(descriptor["digest"]))
        if span is not None:
            read_range(span, descriptor, self.label, keep=False)
        else:
            verify_file(self.folder, descriptor, self.label)

    def read(self, descriptor: dict[str, Any]) -> bytes:
        """The blob's bytes, read and checked against DESCRIPTOR (LayoutError, exit 2)."""
        span = self.image.ranges.get(str(descriptor["digest"]))
        if span is not None:
            return read_range(span, descriptor, self.label)
        return read_file(self.folder, descriptor, self.label)

    def attachments(self) -> list[Attachment]:
        """The artifact manifests the layout's index.json lists beside the image, verified."""
        from xarch.registry.referrers import layout_attachments

        return layout_attachments(self.folder)


class ArtifactSource(PushSource):
    """What a build just made: blobs straight from the content-addressed store and from memory."""

    def __init__(self, artifact: Artifact) -> None:
        self.artifact = artifact
        self.label = "the build"
        self._blobs = artifact.blob_sources()  # digest -> bytes, or the store file holding them
        by_digest = {image.manifest_descriptor.digest: image for image in artifact.images}
        top_json = json.loads(artifact.index_bytes)
        # `root` locates blobs of a layout folder; an Artifact has none, and push asks blob() instead.
        self.image = LayoutImage(Path(self.label), artifact.index_descriptor.to_json(), artifact.index_bytes,
                                 top_json)
        for descriptor in top_json["manifests"]:  # the index's order, as a layout reader would see it
            built = by_digest[descriptor["digest"]]
            self.image.manifests.append(Manifest(descriptor, built.manifest_bytes,
                                                 json.loads(built.manifest_bytes)))

    def blob(self, digest: str) -> Path | bytes:
        """The store file of blob DIGEST, or its bytes when the build holds them in memory."""
        return self._blobs[digest]

    def verify(self, descriptor: dict[str, Any]) -> None:
        """Nothing to do: the build hashed every blob as it wrote it (see the module docstring)."""

    def read(self, descriptor: dict[str, Any]) -> bytes:
        """The bytes of the blob DESCRIPTOR names, from memory or the store."""
        source = self._blobs[descriptor["digest"]]
        return source if isinstance(source, bytes) else source.read_bytes()

    def attachments(self) -> list[Attachment]:
        """The build's attachments (SBOMs, provenance), made in memory."""
        return list(self.artifact.attachments)
