"""OCI image layouts: write one (folder or oci-archive tar), read one back."""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import stat
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from xarch.errors import InputError
from xarch.oci.archive import member_kind, member_name, open_archive, read_member
from xarch.oci.artifact import Attachment
from xarch.oci.atomic import atomic_dir, atomic_file
from xarch.oci.digest import OCI_INDEX, REF_NAME, Descriptor, canonical_json, hex_of
from xarch.oci.filerange import FileRange
from xarch.oci.image import Image
from xarch.oci.tar import write_tar
from xarch.oci.tree import Entry
from xarch.oci.verified import SHA256, VerifiedStream, first_line

OCI_LAYOUT_FILE = canonical_json({"imageLayoutVersion": "1.0.0"})


class LayoutError(InputError, ValueError):
    """An OCI layout or oci-archive that is missing, unreadable or not a layout; names the path (exit 2)."""

    pass


# The media types an index.json entry may have to be the image itself (an OCI index or manifest,
# or their Docker forms, as `docker save` 25+ and skopeo write them).
IMAGE_ENTRY_TYPES = (
    OCI_INDEX,
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)


def image_entry(top: dict[str, Any], where: str, tag: str | None = None) -> dict[str, Any]:
    """The one entry of a layout's index.json (TOP, already schema-checked) that is the image,
    for every reader of layouts (inspect, diff, load, push, verify): the entry named TAG
    (org.opencontainers.image.ref.name) when TAG is given and an entry has it; else the first
    entry that is an index or image manifest and no artifact (an SBOM or attestation listed beside
    it has an artifactType, xarch.oci.artifact). Image-layout spec, "index.json": entries are
    found by their ref.name.

    Raises LayoutError (exit 2, naming WHERE) when none fits.
    """
    entries = top.get("manifests") or []
    if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
        raise LayoutError(f"{where}: manifests is not a list of descriptors")
    if tag is not None:
        for entry in entries:
            annotations = entry.get("annotations")
            if isinstance(annotations, dict) and annotations.get(REF_NAME) == tag:
                return entry
    for entry in entries:
        if entry.get("mediaType") in IMAGE_ENTRY_TYPES and not entry.get("artifactType"):
            return entry
    raise LayoutError(f"{where}: names no image (no index or image manifest among its entries)")


@dataclass(frozen=True)
class Artifact:
    """What a build produces: one image per platform and the index that names them."""

    index_bytes: bytes
    images: tuple[Image, ...]
    tag: str = "latest"
    # SBOMs, provenance (xarch.oci.artifact): listed in the layout's index.json beside the image
    # index, never inside it, so the index digest is the same with and without them.
    attachments: tuple[Attachment, ...] = ()

    @property
    def index_descriptor(self) -> Descriptor:
        return Descriptor.of(OCI_INDEX, self.index_bytes, annotations={REF_NAME: self.tag})

    def blob_sources(self) -> dict[str, bytes | Path]:
        """{digest: bytes or the store file holding them} of every blob: each image's config and layers and
        manifest, the index, and each attachment's blobs and manifest.
        """
        result: dict[str, bytes | Path] = {}
        for image in self.images:
            result.update(image.blob_sources())
        result[self.index_descriptor.digest] = self.index_bytes
        for attached in self.attachments:
            result.update(attached.blobs)
            result[attached.digest] = attached.manifest_bytes
        return result

    def blobs(self) -> dict[str, bytes]:
        """Every blob read into memory (small artifacts and tests only; writers stream)."""
        return {digest: source if isinstance(source, bytes) else source.read_bytes()
                for digest, source in self.blob_sources().items()}

    def layout_files(self) -> Iterator[tuple[str, bytes | Path]]:
        """(relative path, bytes or the file holding them) of every file of the layout, in a fixed order."""
        yield "oci-layout", OCI_LAYOUT_FILE
        top = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
            self.index_descriptor.to_json(), *(attached.descriptor for attached in self.attachments)]}
        yield "index.json", canonical_json(top)
        for digest, data in sorted(self.blob_sources().items()):
            yield f"blobs/sha256/{hex_of(digest)}", data


def write_file(path: Path, data: bytes | Path) -> None:
    """PATH gets DATA, or a copy of the file DATA (copy_file_range/sendfile: no bytes through Python)."""
    if isinstance(data, Path):
        shutil.copyfile(data, path)
    else:
        path.write_bytes(data)


def write_layout(artifact: Artifact, target: Path) -> None:
    """Write ARTIFACT as an OCI image layout folder at TARGET (image-layout spec: oci-layout,
    index.json, blobs/sha256/<hex>). TARGET is replaced atomically: never left half-written.
    """
    with atomic_dir(target) as staging:
        for relative, data in artifact.layout_files():
            path = staging / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            write_file(path, data)


def layout_entries(files: Iterator[tuple[str, bytes | Path]]) -> list[Entry]:
    """Tree entries of a layout, for writing it as a deterministic tar (files streamed from disk)."""
    entries: dict[str, Entry] = {}
    for relative, data in files:
        parts = relative.split("/")
        for depth in range(1, len(parts)):
            directory = "/".join(parts[:depth])
            entries.setdefault(directory, Entry(directory, "dir", 0o755))
        if isinstance(data, Path):
            entries[relative] = Entry(relative, "file", 0o644, source=data)
        else:
            entries[relative] = Entry(relative, "file", 0o644, data=data)
    return list(entries.values())


def write_oci_archive(artifact: Artifact, target: Path, epoch: int) -> None:
    """Write ARTIFACT as an oci-archive (the layout's files in one deterministic tar) at TARGET,
    replaced atomically; tar entry times clamped to EPOCH (seconds).
    """
    with atomic_file(target) as handle:
        write_tar(layout_entries(artifact.layout_files()), epoch, handle)


# index.json, oci-layout and a docker-archive's manifest.json are read whole into memory and
# parsed: bounded like a manifest (xarch.oci.model.MAX_MANIFEST_BYTES, the distribution
# registry's own limit), so a huge or sparse file is refused before a byte is read. xarch's own
# index.json lists one index and its attachments: a few KiB.
MAX_DOCUMENT_BYTES = 4 * 1024 * 1024


def _file_kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


class LayoutReader:
    """Read blobs and the top index of an OCI layout folder or oci-archive tar.

    Every blob is read through xarch.oci.verified: bytes that do not match the digest (and,
    when the caller passes it, the size) of their descriptor raise BlobMismatch (exit 2).
    Only regular files are read (a FIFO, folder, device, symlink loop or, in an archive, a
    symlink or hard-link member is named for what it is); documents read whole (index.json,
    oci-layout, manifest.json) are bounded by MAX_DOCUMENT_BYTES; oci-layout must be the
    image-layout spec's `{"imageLayoutVersion": "1.0.0"}`. Unreadable or malformed files raise
    LayoutError naming the layout and the file.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._tar: tarfile.TarFile | None = None
        self._members: dict[str, tarfile.TarInfo] = {}
        self._others: dict[str, tarfile.TarInfo] = {}
        if self.path.is_dir():
            missing = [name for name in ("oci-layout", "index.json") if not self.has(name)]
            if missing:
                # image-layout spec: both MUST exist; every reader (push too) asks for both.
                raise LayoutError(f"{self.path}: not an OCI layout (no {' and no '.join(missing)})")
        elif self.path.is_file():
            self._tar, self._members = open_archive(self.path)
            self._others = {member_name(m): m for m in self._tar.getmembers() if not m.isfile()}
            if "index.json" in self._members and "oci-layout" not in self._members:
                raise LayoutError(f"{self.path}: not an oci-archive (index.json but no oci-layout)")
        else:
            raise LayoutError(f"{self.path}: no such file or folder")
        if self.has("oci-layout"):
            self._check_oci_layout()

    def _check_oci_layout(self) -> None:
        # image-layout spec, "oci-layout file": a JSON object whose imageLayoutVersion is "1.0.0"
        # (the one version there is); anything else is not a layout xarch knows how to read.
        data = self.read("oci-layout")
        try:
            version = json.loads(data).get("imageLayoutVersion")
        except (ValueError, RecursionError, AttributeError):
            version = None
            shown = "not a JSON object"
        else:
            shown = f"imageLayoutVersion {version!r}"[:100]
        if version != "1.0.0":
            raise LayoutError(f'{self.path}: oci-layout: {shown}, not {{"imageLayoutVersion": "1.0.0"}}')

    def _not_regular(self, relative: str, what: str, kind: str) -> LayoutError:
        where = f" ({relative})" if what != relative else ""
        return LayoutError(f"{self.path}: {what} is {kind}, not a regular file{where}")

    def _missing(self, relative: str, what: str) -> LayoutError:
        where = f" ({relative})" if what != relative else ""
        return LayoutError(f"{self.path}: {what} is missing{where}")

    def _open_file(self, relative: str, what: str) -> IO[bytes]:
        """The regular file RELATIVE of a layout folder, opened without blocking (a FIFO is refused,
        never waited on) and checked to be a regular file once open."""
        path = self.path / relative
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
        except OSError as error:
            if error.errno == errno.ELOOP:
                raise self._not_regular(relative, what, "a symlink loop") from None
            if error.errno == errno.ENOENT:
                if path.is_symlink():
                    raise self._not_regular(relative, what, "a dangling symlink") from None
                raise self._missing(relative, what) from None
            raise LayoutError(f"{self.path}: cannot read {relative} ({error.strerror})") from None
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            os.close(fd)
            kind = _file_kind(mode)
            if path.is_symlink():
                kind += f" (a symlink to {os.readlink(path)!r})"
            raise self._not_regular(relative, what, kind)
        return os.fdopen(fd, "rb")

    def _member(self, relative: str, what: str) -> tarfile.TarInfo:
        member = self._members.get(relative)
        if member is None:
            other = self._others.get(relative)
            if other is not None:
                raise self._not_regular(relative, what, member_kind(other))
            raise self._missing(relative, what)
        return member

    def open(self, relative: str, what: str | None = None) -> IO[bytes]:
        """An unverified stream of the regular file RELATIVE; use blob()/open_blob() for blobs.

        LayoutError (exit 2, naming WHAT, default RELATIVE) when it is missing, unreadable or not
        a regular file.
        """
        what = what or relative
        if self._tar is None:
            return self._open_file(relative, what)
        extracted = self._tar.extractfile(self._member(relative, what))
        if extracted is None:
            raise self._missing(relative, what)
        return extracted

    def read(self, relative: str, limit: int = MAX_DOCUMENT_BYTES) -> bytes:
        """The bytes of file RELATIVE (e.g. index.json), unverified; LayoutError when missing,
        unreadable, not a regular file, or more than LIMIT bytes (refused before reading).
        """
        if self._tar is not None:
            member = self._member(relative, relative)
            self._check_limit(relative, member.size, limit)
            return read_member(self._tar, member, self.path)  # one line for an archive cut short
        with self.open(relative) as handle:
            self._check_limit(relative, os.fstat(handle.fileno()).st_size, limit)
            try:
                data = handle.read(limit + 1)
            except (OSError, EOFError, tarfile.TarError, zlib.error) as error:
                raise LayoutError(f"{self.path}: cannot read {relative} ({first_line(error)})") from None
            self._check_limit(relative, len(data), limit)  # a file that grew, or lied about its size
            return data

    def _check_limit(self, relative: str, size: int, limit: int) -> None:
        if size > limit:
            raise LayoutError(
                f"{self.path}: {relative} is {size} bytes, more than the {limit} a document may have"
            )

    def has(self, relative: str) -> bool:
        """True when the layout holds something named RELATIVE (reading it says when that is not a
        regular file)."""
        if self._tar is None:
            return os.path.lexists(self.path / relative)
        return relative in self._members or relative in self._others

    @property
    def label(self) -> str:
        """The layout's path, as every message names it (xarch.oci.model.BlobSource)."""
        return str(self.path)

    @property
    def is_archive(self) -> bool:
        return self._tar is not None

    def blob_path(self, digest: str) -> str:
        """`blobs/sha256/<hex>` of DIGEST; LayoutError when DIGEST is not `sha256:<64 hex>`."""
        try:
            return f"blobs/sha256/{hex_of(digest)}"
        except ValueError as error:
            raise LayoutError(f"{self.path}: {error}") from None

    def open_blob(self, digest: str, size: int | None = None) -> VerifiedStream:
        """A stream of blob DIGEST that raises BlobMismatch once it proves not DIGEST of SIZE bytes."""
        path = self.blob_path(digest)
        return VerifiedStream(self.open(path, f"blob {digest}"), digest, size, str(self.path))

    def blob(self, digest: str, size: int | None = None) -> bytes:
        """The bytes of blob DIGEST, checked to be DIGEST (and SIZE bytes when given); BlobMismatch
        (exit 2) when not, LayoutError when missing.
        """
        with self.open_blob(digest, size) as stream:
            data = stream.read()
            stream.verify()
        return data

    def read_manifest(self, digest: str, size: int | None = None) -> bytes:
        """The bytes of manifest or index DIGEST: a blob like any other in a layout (see blob)."""
        return self.blob(digest, size)

    def blob_range(self, digest: str) -> FileRange | None:
        """Where the bytes of blob DIGEST lie in an uncompressed oci-archive, to be read in place
        (xarch.oci.filerange); None for a layout folder, a compressed tar or a sparse member, whose
        bytes are not one run of the file. LayoutError when it is missing or not a regular file."""
        if self._tar is None or not isinstance(self._tar.fileobj, io.BufferedReader):
            return None
        member = self._member(self.blob_path(digest), f"blob {digest}")
        if member.sparse is not None or member.type not in (tarfile.REGTYPE, tarfile.AREGTYPE):
            return None
        return FileRange(self.path, member.offset_data, member.size)

    def blob_size(self, digest: str) -> int:
        """The size in bytes of blob DIGEST as the layout holds it (a stat, or its member's header),
        not read; LayoutError when it is missing or not a regular file."""
        path = self.blob_path(digest)
        if self._tar is not None:
            return self._member(path, f"blob {digest}").size
        with self._open_file(path, f"blob {digest}") as handle:
            return os.fstat(handle.fileno()).st_size

    def verify_blob(self, digest: str, size: int | None = None) -> None:
        """Hash blob DIGEST (a layer, say) without keeping it; BlobMismatch when it differs."""
        with self.open_blob(digest, size) as stream:
            stream.verify()

    def docker_file(self, name: Any, diff_id: Any = None) -> tuple[str, int]:
        """(sha256, size) of docker-archive file NAME, checked against its content address: the
        sha256 its name carries (blobs/sha256/<hex>, <hex>.json, <hex>.tar) or, for an uncompressed
        legacy <id>/layer.tar, DIFF_ID. BlobMismatch when it differs; LayoutError when absent."""
        if not isinstance(name, str) or not self.has(name):
            raise LayoutError(f"{self.path}: manifest.json names {name!r}, which the archive does not hold")
        base = name.rsplit("/", 1)[-1].removesuffix(".json").removesuffix(".tar")
        expected = f"sha256:{base}" if SHA256.fullmatch(f"sha256:{base}") else None
        if expected is None and isinstance(diff_id, str) and SHA256.fullmatch(diff_id):
            with self.open(name) as handle:
                if handle.read(2) != b"\x1f\x8b":  # an uncompressed layer's digest is its diff_id
                    expected = diff_id
        with VerifiedStream(self.open(name), expected, None, f"{self.path}: {name}") as stream:
            stream.verify()
        return stream.check.actual, stream.count

    def top_index(self) -> dict[str, Any]:
        """index.json parsed and checked to be an OCI index (image-layout spec); DocumentError names the
        field.
        """
        from xarch.oci.schema import parse_document

        return dict(parse_document(self.read("index.json"), f"{self.path}: index.json", "index"))

    def close(self) -> None:
        """Close the archive, if the layout is one."""
        if self._tar is not None:
            self._tar.close()
