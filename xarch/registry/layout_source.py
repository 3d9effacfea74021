"""Read an OCI image layout (the standard directory format) for pushing, verifying every blob.

Only reading, and only what a push needs; the writer lives in xarch.oci.layout.
"""

from __future__ import annotations

import tarfile
import tempfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xarch.oci.archive import open_archive
from xarch.oci.layout import LayoutError, image_entry
from xarch.oci.schema import parse_document
from xarch.oci.verified import (
    BadDescriptor,
    descriptor_fields,
    first_line,
    json_object,
    read_verified,
    verify_blob,
)
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


@dataclass
class LayoutImage:
    """The top of a layout (an index, or a single manifest) and the manifests under it."""

    root: Path
    top_descriptor: dict[str, Any]
    top_data: bytes
    top_json: dict[str, Any]
    manifests: list[Manifest] = field(default_factory=list)

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
        raise LayoutError(f"{root}: blob {digest} is missing from blobs/")
    return path, digest, size


def _read_verified(root: Path, descriptor: Any, where: str) -> bytes:
    path, digest, size = _blob_file(root, descriptor, where)
    return read_verified(path.open("rb"), digest, size, str(root), LayoutError)


def verify_file(root: Path, descriptor: Any, where: str) -> None:
    """Hash the (possibly large) blob file of DESCRIPTOR in pieces; the registry checks too, but only
    after the upload. LayoutError when it is missing, BlobMismatch (exit 2) when it differs."""
    path, digest, size = _blob_file(root, descriptor, where)
    verify_blob(path.open("rb"), digest, size, str(root), LayoutError)


def _check_size(root: Path, descriptor: Any, where: str) -> None:
    """The blob file of DESCRIPTOR exists and has its size: a stat, no read."""
    path, digest, size = _blob_file(root, descriptor, where)
    actual = path.stat().st_size
    if actual != size:  # worded as xarch.oci.verified.BlobCheck words it once it has read the file
        detail = f"more than the descriptor's {size} bytes" if actual > size \
            else f"{actual} bytes, the descriptor says {size}"
        raise LayoutError(f"{root}: blob {digest} does not match its digest or size: {detail}")


def read_layout(root: Path | str, tag: str | None = None, hash_blobs: bool = True) -> LayoutImage:
    """Parse ROOT/index.json and verify its image entry (xarch.oci.layout.image_entry: the one
    named TAG when an entry has that ref.name, else the first index or manifest that is no artifact).

    The index and the manifests are always read and hashed. Configs and layers are hashed too,
    unless HASH_BLOBS is False: then each is only checked to exist with its descriptor's size, and
    whoever sends one hashes it first (verify_file), so a push reads only what it sends.

    LayoutError, BadDescriptor or BlobMismatch (exit 2) name the file and the field or blob.
    """
    root = Path(root)
    index_file = root / "index.json"
    if not (root / "oci-layout").is_file() or not index_file.is_file():
        raise LayoutError(f"{root}: not an OCI layout (oci-layout and index.json expected)")
    # The top index is checked against its schema first, as every other reader does.
    entries = parse_document(index_file.read_bytes(), str(index_file), "index").get("manifests") or []
    if not isinstance(entries, list) or not entries:
        raise LayoutError(f"{index_file}: lists no image")
    for entry in entries:
        descriptor_fields(entry, str(index_file))
    top_descriptor = image_entry({"manifests": entries}, str(index_file), tag)
    top_data = _read_verified(root, top_descriptor, str(index_file))
    top_where = f"{root}: {top_descriptor['digest']}"
    image = LayoutImage(root, top_descriptor, top_data, json_object(top_data, top_where))
    descriptors = image.top_json.get("manifests", []) if image.is_index else [top_descriptor]
    if not isinstance(descriptors, list):
        raise BadDescriptor(f"{top_where}: manifests is not a JSON array")
    for descriptor in descriptors:
        data = top_data if descriptor is top_descriptor else _read_verified(root, descriptor, top_where)
        where = f"{root}: {descriptor['digest']}"
        manifest = json_object(data, where)
        if media_type_of(manifest, descriptor.get("mediaType")) in INDEXES:
            raise LayoutError(f"{root}: nested index {descriptor['digest']} is not supported")
        layers = manifest.get("layers", [])
        if not isinstance(layers, list):
            raise BadDescriptor(f"{where}: layers is not a JSON array")
        for blob in [manifest.get("config"), *layers]:
            descriptor_fields(blob, where)
        image.manifests.append(Manifest(descriptor, data, manifest))
    for blob in image.unique_blobs():
        (verify_file if hash_blobs else _check_size)(root, blob, str(root))
    return image


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
        archive, _ = open_archive(path)  # a file that is not a tar, or is cut short: one line
        try:
            with archive:
                members = [m for m in archive.getmembers() if m.isfile() or m.isdir()]
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
