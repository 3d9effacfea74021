"""Read an OCI image layout (the standard directory format) for pushing, verifying every blob.

Only reading, and only what a push needs; the writer lives in xarch.oci.layout.
"""

from __future__ import annotations

import hashlib
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xarch.oci.archive import open_archive
from xarch.oci.schema import parse_document
from xarch.registry.errors import LayoutError
from xarch.registry.mediatypes import INDEXES, media_type_of, sha256_digest

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
        algorithm, _, hex_digest = digest.partition(":")
        return self.root / "blobs" / algorithm / hex_digest

    def unique_blobs(self) -> list[dict[str, Any]]:
        """Config and layer descriptors of all manifests, each digest once, in first-seen order."""
        seen: dict[str, dict[str, Any]] = {}
        for manifest in self.manifests:
            for descriptor in manifest.blob_descriptors():
                seen.setdefault(descriptor["digest"], descriptor)
        return list(seen.values())


def _read_verified(root: Path, descriptor: dict[str, Any]) -> bytes:
    digest = descriptor.get("digest", "")
    path = root / "blobs" / Path(*digest.split(":", 1))
    if not digest.startswith("sha256:") or not path.is_file():
        raise LayoutError(f"{root}: blob {digest or '(no digest)'} is missing from blobs/")
    data = path.read_bytes()
    if sha256_digest(data) != digest or len(data) != descriptor.get("size"):
        raise LayoutError(f"{root}: blob {digest} does not match its digest or size")
    return data


def _verify_file(path: Path, root: Path, descriptor: dict[str, Any]) -> None:
    """Hash a (possibly large) blob file in pieces; the registry checks too, but only after the upload."""
    digest = descriptor["digest"]
    if not path.is_file():
        raise LayoutError(f"{root}: blob {digest} is missing from blobs/")
    hasher = hashlib.sha256()
    size = 0
    with path.open("rb") as blob:
        while piece := blob.read(1 << 20):
            hasher.update(piece)
            size += len(piece)
    if "sha256:" + hasher.hexdigest() != digest or size != descriptor.get("size"):
        raise LayoutError(f"{root}: blob {digest} does not match its digest or size")


def read_layout(root: Path | str, tag: str | None = None) -> LayoutImage:
    """Parse ROOT/index.json and verify every blob of one entry: the one named TAG (annotation
    org.opencontainers.image.ref.name) when the layout has such an entry, else the first."""
    root = Path(root)
    index_file = root / "index.json"
    if not (root / "oci-layout").is_file() or not index_file.is_file():
        raise LayoutError(f"{root}: not an OCI layout (oci-layout and index.json expected)")
    entries = parse_document(index_file.read_bytes(), str(index_file), "index")["manifests"]
    if not entries:
        raise LayoutError(f"{index_file}: lists no image")
    named = [e for e in entries if tag and (e.get("annotations") or {}).get(REF_NAME) == tag]
    top_descriptor = named[0] if named else entries[0]
    top_data = _read_verified(root, top_descriptor)
    where = f"{root}: blob {top_descriptor['digest']}"
    image = LayoutImage(root, top_descriptor, top_data, parse_document(top_data, where, "image"))
    descriptors = image.top_json.get("manifests", []) if image.is_index else [top_descriptor]
    for descriptor in descriptors:
        data = top_data if descriptor is top_descriptor else _read_verified(root, descriptor)
        manifest = parse_document(data, f"{root}: blob {descriptor['digest']}", "image")
        if media_type_of(manifest, descriptor.get("mediaType")) in INDEXES:
            raise LayoutError(f"{root}: nested index {descriptor['digest']} is not supported")
        image.manifests.append(Manifest(descriptor, data, manifest))
    for blob in image.unique_blobs():
        _verify_file(image.blob_path(blob["digest"]), root, blob)
    return image


@contextmanager
def layout_folder(path: Path | str) -> Iterator[Path]:
    """PATH when it is a layout folder; an oci-archive (a tar of one) unpacked into a temporary folder."""
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
        except (tarfile.TarError, EOFError) as exc:
            raise LayoutError(f"{path}: truncated or corrupt oci-archive ({exc})") from None
        yield Path(scratch)
