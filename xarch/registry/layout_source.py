"""Read an OCI image layout (the standard directory format) for pushing, verifying every blob.

Only reading, and only what a push needs; the writer lives in xarch.oci.layout.
"""

from __future__ import annotations

import os
import tarfile
import tempfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xarch.oci.archive import ArchiveError, member_kind, member_name, open_archive
from xarch.oci.filerange import FileRange
from xarch.oci.layout import LayoutError, LayoutReader
from xarch.oci.model import ImageIndex, layout_top
from xarch.oci.verified import BlobMismatch, VerifiedStream, descriptor_fields, first_line
from xarch.registry.mediatypes import INDEXES, media_type_of

REF_NAME = "org.opencontainers.image.ref.name"


@dataclass
class Manifest:
    """An image manifest: its descriptor in the index, exact bytes and parsed JSON."""

    descriptor: dict[str, Any]
    data: bytes
    json: dict[str, Any]

    @property
    def digest(self) -> str:
        return str(self.descriptor["digest"])

    @property
    def media_type(self) -> str:
        return media_type_of(self.json, self.descriptor.get("mediaType"))

    def blob_descriptors(self) -> list[dict[str, Any]]:
        """The config descriptor, then the layer descriptors, as the manifest lists them (OCI descriptors)."""
        return [self.json["config"], *self.json.get("layers", [])]


class NotInPlace(LayoutError):
    """An oci-archive whose blobs cannot all be read where they lie (a compressed tar, a sparse
    member): a push unpacks it instead (layout_folder)."""


@dataclass
class LayoutImage:
    """The top of a layout (an index, or a single manifest) and the manifests under it; for an
    oci-archive read in place, where each config and layer lies in it (RANGES, by digest)."""

    root: Path
    top_descriptor: dict[str, Any]
    top_data: bytes
    top_json: dict[str, Any]
    manifests: list[Manifest] = field(default_factory=list)
    ranges: dict[str, FileRange] = field(default_factory=dict)

    @property
    def is_index(self) -> bool:
        return media_type_of(self.top_json, self.top_descriptor.get("mediaType")) in INDEXES

    @property
    def tag(self) -> str | None:
        return (self.top_descriptor.get("annotations") or {}).get(REF_NAME)

    def blob_path(self, digest: str) -> Path:
        """Where blob DIGEST (`sha256:<hex>`) lives: blobs/<alg>/<hex> (OCI image-layout spec)."""
        algorithm, _, hex_digest = digest.partition(":")
        return self.root / "blobs" / algorithm / hex_digest

    def unique_blobs(self) -> list[dict[str, Any]]:
        """Config and layer descriptors of all manifests, each digest once, in first-seen order."""
        seen: dict[str, dict[str, Any]] = {}
        for manifest in self.manifests:
            for descriptor in manifest.blob_descriptors():
                seen.setdefault(descriptor["digest"], descriptor)
        return list(seen.values())


def _blob_file(root: Path, descriptor: Any, where: str) -> tuple[Path, str, int]:
    _, digest, size = descriptor_fields(descriptor, where)
    path = root / "blobs" / "sha256" / digest.removeprefix("sha256:")
    if not path.is_file():
        if os.path.lexists(path):  # a FIFO, folder, device, symlink loop: the reader names what it is
            LayoutReader(root).open_blob(digest).close()
        raise LayoutError(f"{root}: blob {digest} is missing from blobs/")
    return path, digest, size


def verify_file(root: Path, descriptor: Any, where: str) -> None:
    """Hash the (possibly large) blob file of DESCRIPTOR in pieces (xarch.oci.layout.LayoutReader); the
    registry checks too, but only after the upload. LayoutError (exit 2) when it is missing or differs."""
    _, digest, size = _blob_file(root, descriptor, where)
    try:
        LayoutReader(root).verify_blob(digest, size)
    except BlobMismatch as error:  # a push refuses a broken layout as a LayoutError, whatever is wrong in it
        raise LayoutError(str(error)) from None


def read_file(root: Path, descriptor: Any, where: str) -> bytes:
    """The bytes of the (small) blob file of DESCRIPTOR, checked as verify_file checks it."""
    _, digest, size = _blob_file(root, descriptor, where)
    try:
        return LayoutReader(root).blob(digest, size)
    except BlobMismatch as error:
        raise LayoutError(str(error)) from None


def read_range(span: FileRange, descriptor: Any, where: str, keep: bool = True) -> bytes:
    """The bytes of the blob of DESCRIPTOR where it lies in an oci-archive (SPAN), checked against
    its digest and size as verify_file checks a file (with KEEP False: only checked, b"").
    Each call opens the file on its own: verifications run on several threads at once, and no
    tar headers are read again. LayoutError (exit 2) when it differs; RangeError when cut short."""
    _, digest, size = descriptor_fields(descriptor, where)
    try:
        with VerifiedStream(span.open(), digest, size, str(span.path)) as stream:  # type: ignore[arg-type]
            if not keep:
                stream.verify()
                return b""
            data = stream.read()
            stream.verify()
            return data
    except BlobMismatch as error:  # a push refuses a broken layout as a LayoutError, whatever is wrong in it
        raise LayoutError(str(error)) from None


def _check_size(root: Path, descriptor: Any, where: str) -> None:
    """The blob file of DESCRIPTOR exists and has its size: a stat, no read."""
    path, digest, size = _blob_file(root, descriptor, where)
    _same_size(root, digest, path.stat().st_size, size)


def _same_size(layout: Path, digest: str, actual: int, size: int) -> None:
    """LayoutError unless blob DIGEST of LAYOUT holds SIZE bytes (ACTUAL, from a stat or a tar
    header), worded as xarch.oci.verified.BlobCheck words it once it has read the blob."""
    if actual != size:
        detail = f"more than the descriptor's {size} bytes" if actual > size \
            else f"{actual} bytes, the descriptor says {size}"
        raise LayoutError(f"{layout}: blob {digest} does not match its digest or size: {detail}")


def read_layout(root: Path | str, tag: str | None = None, hash_blobs: bool = True) -> LayoutImage:
    """The image of the layout folder or oci-archive ROOT, read through the read model
    (xarch.oci.model.layout_top: the index.json entry named TAG, else the first index or manifest
    that is no artifact). An oci-archive is read in place: each config and layer must lie in one
    run of the file (LayoutImage.ranges), else NotInPlace.

    The index and the manifests are always read and hashed. Configs and layers are hashed too,
    unless HASH_BLOBS is False: then each is only checked to exist with its descriptor's size, and
    whoever sends one hashes it first (verify_file), so a push reads only what it sends.

    LayoutError, BadDescriptor, DocumentError or BlobMismatch (exit 2) name the file and the field or blob.
    """
    root = Path(root)
    reader = LayoutReader(root)
    try:
        top = layout_top(reader, tag)
        if isinstance(top, ImageIndex):
            entries = top.index.get("manifests") or []  # the index's own descriptors, every field kept
            image = LayoutImage(root, top.descriptor.to_json(), top.data, top.index)
            images = list(top.images())
            if not images:
                raise LayoutError(f"{root}: index {top.digest} lists no image")
        else:
            entries, images = [top.descriptor.to_json() if top.descriptor else {}], [top]
            image = LayoutImage(root, entries[0], top.manifest_bytes or b"", top.manifest)
        for entry, read in zip(entries, images, strict=True):
            image.manifests.append(Manifest(entry, read.manifest_bytes or b"", read.manifest))
        if reader.is_archive:
            for blob in image.unique_blobs():
                _, digest, size = descriptor_fields(blob, str(root))
                _check_member(reader, digest, size)
                span = reader.blob_range(digest)
                if span is None:
                    raise NotInPlace(f"{root}: blob {digest} is not one run of the file (a compressed tar "
                                     "or a sparse member)")
                image.ranges[digest] = span
    finally:
        reader.close()
    for blob in image.unique_blobs():
        span = image.ranges.get(str(blob["digest"]))
        if span is not None:
            if hash_blobs:
                read_range(span, blob, str(root), keep=False)
        else:
            (verify_file if hash_blobs else _check_size)(root, blob, str(root))
    return image


def _check_member(reader: LayoutReader, digest: str, size: int) -> None:
    """Blob DIGEST of an oci-archive is a regular member of SIZE bytes: its header, no read."""
    _same_size(reader.path, digest, reader.blob_size(digest), size)


@contextmanager
def layout_folder(path: Path | str) -> Iterator[Path]:
    """PATH when it is a layout folder; an oci-archive (a tar of one) unpacked into a temporary folder.

    A context manager; LayoutError (exit 2) when PATH is neither, or a corrupt or unsafe archive.
    """
    path = Path(path)
    if path.is_dir():
        yield path
        return
    if not path.is_file():
        raise LayoutError(f"{path}: no such OCI layout folder or oci-archive")
    with tempfile.TemporaryDirectory(prefix="xarch-push-") as scratch:
        try:  # a file that is not a tar, cut short, or with unsafe or duplicated members: one line
            archive, _ = open_archive(path)
        except ArchiveError as error:  # push refuses a broken layout as a LayoutError, whatever is wrong
            raise LayoutError(str(error)) from None
        try:
            with archive:
                members = [m for m in archive.getmembers() if m.isfile() or m.isdir()]
                for member in archive.getmembers():
                    name = member_name(member)
                    if name.startswith("blobs/") and not (member.isfile() or member.isdir()):
                        # worded as xarch.oci.layout.LayoutReader words it for every other command
                        what = f"blob sha256:{name.rsplit('/', 1)[-1]} is {member_kind(member)}"
                        raise LayoutError(f"{path}: {what}, not a regular file ({name})")
                for member in members:
                    # Only plain files and folders, and only inside the scratch folder.
                    if member.name.startswith("/") or ".." in Path(member.name).parts:
                        raise LayoutError(f"{path}: unsafe member {member.name!r} in the archive")
                if hasattr(tarfile, "data_filter"):  # Python >= 3.10.12 / 3.11.4: belt and braces
                    archive.extractall(scratch, members=members, filter="data")
                else:
                    archive.extractall(scratch, members=members)
        except (tarfile.TarError, EOFError, zlib.error) as exc:
            raise LayoutError(f"{path}: truncated or corrupt oci-archive ({first_line(exc)})") from None
        yield Path(scratch)
