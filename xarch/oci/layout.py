"""OCI image layouts: write one (folder or oci-archive tar), read one back."""

from __future__ import annotations

import json
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xarch.oci.atomic import atomic_dir, atomic_file
from xarch.oci.digest import OCI_INDEX, REF_NAME, Descriptor, canonical_json, hex_of, sha256_digest
from xarch.oci.image import Image
from xarch.oci.tar import write_tar
from xarch.oci.tree import Entry

OCI_LAYOUT_FILE = canonical_json({"imageLayoutVersion": "1.0.0"})


class LayoutError(ValueError):
    pass


@dataclass(frozen=True)
class Artifact:
    """What a build produces: one image per platform and the index that names them."""

    index_bytes: bytes
    images: tuple[Image, ...]
    tag: str = "latest"

    @property
    def index_descriptor(self) -> Descriptor:
        return Descriptor.of(OCI_INDEX, self.index_bytes, annotations={REF_NAME: self.tag})

    def blobs(self) -> dict[str, bytes]:
        result: dict[str, bytes] = {}
        for image in self.images:
            result.update(image.blobs())
        result[self.index_descriptor.digest] = self.index_bytes
        return result

    def layout_files(self) -> Iterator[tuple[str, bytes]]:
        """(relative path, bytes) of every file of the layout, in a fixed order."""
        yield "oci-layout", OCI_LAYOUT_FILE
        top = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [self.index_descriptor.to_json()]}
        yield "index.json", canonical_json(top)
        for digest, data in sorted(self.blobs().items()):
            yield f"blobs/sha256/{hex_of(digest)}", data


def write_layout(artifact: Artifact, target: Path) -> None:
    with atomic_dir(target) as staging:
        for relative, data in artifact.layout_files():
            path = staging / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)


def layout_entries(files: Iterator[tuple[str, bytes]]) -> list[Entry]:
    """Tree entries of a layout, for writing it as a deterministic tar."""
    entries: dict[str, Entry] = {}
    for relative, data in files:
        parts = relative.split("/")
        for depth in range(1, len(parts)):
            directory = "/".join(parts[:depth])
            entries.setdefault(directory, Entry(directory, "dir", 0o755))
        entries[relative] = Entry(relative, "file", 0o644, data=data)
    return list(entries.values())


def write_oci_archive(artifact: Artifact, target: Path, epoch: int) -> None:
    with atomic_file(target) as handle:
        write_tar(layout_entries(artifact.layout_files()), epoch, handle)


class LayoutReader:
    """Read blobs and the top index of an OCI layout folder or oci-archive tar."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._tar: tarfile.TarFile | None = None
        self._members: dict[str, tarfile.TarInfo] = {}
        if self.path.is_dir():
            if not (self.path / "index.json").is_file():
                raise LayoutError(f"{self.path}: not an OCI layout (no index.json)")
        elif self.path.is_file():
            try:
                self._tar = tarfile.open(self.path)
            except tarfile.TarError as error:
                first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
                raise LayoutError(f"{self.path}: not a tar archive ({first_line})") from None
            self._members = {m.name.lstrip("./"): m for m in self._tar.getmembers() if m.isfile()}
        else:
            raise LayoutError(f"{self.path}: no such file or folder")

    def read(self, relative: str) -> bytes:
        if self._tar is None:
            file = self.path / relative
            if not file.is_file():
                raise LayoutError(f"{self.path}: {relative} is missing")
            return file.read_bytes()
        member = self._members.get(relative)
        extracted = self._tar.extractfile(member) if member else None
        if extracted is None:
            raise LayoutError(f"{self.path}: {relative} is missing")
        return extracted.read()

    def has(self, relative: str) -> bool:
        return (self.path / relative).is_file() if self._tar is None else relative in self._members

    @property
    def is_archive(self) -> bool:
        return self._tar is not None

    def blob(self, digest: str) -> bytes:
        data = self.read(f"blobs/sha256/{hex_of(digest)}")
        if sha256_digest(data) != digest:
            raise LayoutError(f"{self.path}: blob {digest} does not match its digest")
        return data

    def json_blob(self, digest: str) -> dict[str, Any]:
        return json.loads(self.blob(digest))

    def top_index(self) -> dict[str, Any]:
        return json.loads(self.read("index.json"))

    def close(self) -> None:
        if self._tar is not None:
            self._tar.close()
