"""Layers: a set of tree entries → normalized tar → diff_id → compressed blob → digest.

write_layer streams: tar pieces → sha256 (diff_id) → chunked parallel compressor
(xarch.oci.compress) → sha256 (digest) → a temporary file renamed into the content-addressed
store. Neither the tar nor the blob is ever whole in memory, so memory does not grow with
the layer. A Layer then names its blob by path and opens it on demand.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from xarch.oci.digest import OCI_LAYER_GZIP, OCI_LAYER_ZSTD, Descriptor, sha256_digest
from xarch.oci.tar import sorted_entries, tar_chunks
from xarch.oci.tree import Entry, path_bytes

if TYPE_CHECKING:
    from xarch.oci.store import Store

MEDIA_TYPES = {"gzip": OCI_LAYER_GZIP, "zstd": OCI_LAYER_ZSTD}


class Layer:
    """One layer: its identity (diff_id) and its compressed blob, held either in memory (DATA: small
    layers read from elsewhere) or as the file PATH (a blob of the store, opened on demand).

    `blob` gives the bytes either way, reading the file when needed: writers and pushers use
    `open()`/`source` instead, so that a large layer is never whole in memory.
    """

    __slots__ = ("name", "diff_id", "data", "uncompressed_size", "entry_count", "path", "digest", "size",
                 "media_type")

    def __init__(self, name: str, diff_id: str, blob: bytes | None = None, uncompressed_size: int = 0,
                 entry_count: int = 0, *, path: Path | None = None, digest: str = "", size: int = -1,
                 media_type: str = OCI_LAYER_GZIP) -> None:
        if blob is None and (path is None or not digest):
            raise ValueError(f"layer {name}: neither bytes nor a file and its digest")
        self.name = name
        self.diff_id = diff_id  # sha256 of the uncompressed tar: the layer's identity
        self.data = blob
        self.uncompressed_size = uncompressed_size
        self.entry_count = entry_count
        self.path = path
        self.digest = digest or sha256_digest(blob or b"")  # "sha256:…" of the compressed bytes
        if size < 0:
            size = len(blob) if blob is not None else path.stat().st_size  # type: ignore[union-attr]
        self.size = size
        self.media_type = media_type

    def __repr__(self) -> str:
        return f"Layer({self.name!r}, {self.digest}, {self.size} bytes, {self.media_type})"

    @property
    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, self.digest, self.size)

    def open(self) -> BinaryIO:
        """A stream of the compressed bytes (not re-verified: the store checked them on entry)."""
        if self.data is not None:
            return io.BytesIO(self.data)
        assert self.path is not None
        return open(self.path, "rb")

    @property
    def blob(self) -> bytes:
        """All compressed bytes in memory: for small layers and tests; writers use open()/source."""
        if self.data is not None:
            return self.data
        with self.open() as handle:
            return handle.read()

    @property
    def source(self) -> bytes | Path:
        """What a writer copies: the bytes in memory, or the file that holds them."""
        if self.data is not None:
            return self.data
        assert self.path is not None
        return self.path


def fix_hardlinks(entries: list[Entry]) -> list[Entry]:
    """Make every hard-link group start at its first path in write order.

    tar needs a link's target written before the link. Whatever a producer chose as
    "the" file, the first path by bytes becomes the regular file and the others link to
    it, so the order cannot depend on how the producer walked its input. (Links to a file
    in another layer were made copies when the layers were split.)

    ValueError for a hard link to a path that is not a regular file among ENTRIES (links across layers
    were made copies before).
    """
    by_path = {e.path: e for e in entries}
    groups: dict[str, list[str]] = {}
    for entry in entries:
        if entry.type == "hardlink":
            target = by_path.get(entry.linkname)
            while target is not None and target.type == "hardlink":
                target = by_path.get(target.linkname)
            if target is None or target.type != "file":
                raise ValueError(f"{entry.path}: hard link to {entry.linkname!r}, which is not a file here")
            groups.setdefault(target.path, [target.path]).append(entry.path)
    result = dict(by_path)
    for target_path, members in groups.items():
        file_entry = by_path[target_path]
        ordered = sorted(members, key=path_bytes)
        first = ordered[0]
        result[first] = replace(by_path[first], type="file", linkname="", data=file_entry.data,
                                source=file_entry.source)
        for other in ordered[1:]:
            result[other] = replace(by_path[other], type="hardlink", linkname=first, data=None, source=None)
    return list(result.values())


class _Counted:
    """Feeds an iterator of pieces through a sha256 and a byte count."""

    def __init__(self, pieces: Iterable[bytes]) -> None:
        self.pieces = pieces
        self.hasher = hashlib.sha256()
        self.size = 0

    def __iter__(self) -> Iterator[bytes]:
        for piece in self.pieces:
            self.hasher.update(piece)
            self.size += len(piece)
            yield piece

    @property
    def digest(self) -> str:
        return "sha256:" + self.hasher.hexdigest()


def write_layer(name: str, entries: Iterable[Entry], epoch: int, store: Store, algorithm: str = "gzip",
                level: int | None = None, workers: int | None = None) -> Layer:
    """Write the layer of ENTRIES into STORE, streaming; return it with its blob's path.

    Memory: the entry list plus a few MiB of chunks in flight (xarch.oci.compress), whatever
    the size of the files. ALGORITHM "gzip" (libdeflate level 1..12, default 6) or "zstd" (level
    1..19); ValueError otherwise. Errors reading a source (OSError, TarError) propagate and leave
    nothing in the store.
    """
    # Loaded here: reading a layer (a build replayed from its record) needs no compressor.
    from xarch.oci.compress import DEFAULT_LEVEL, compressed_stream

    level = DEFAULT_LEVEL if level is None else level
    ordered = sorted_entries(fix_hardlinks(list(entries)))
    tar = _Counted(tar_chunks(ordered, epoch))
    hexdigest = store.put_chunks(compressed_stream(tar, algorithm, level, workers), None, f"layer {name}")
    return Layer(name, tar.digest, None, tar.size, len(ordered), path=store.path(hexdigest),
                 digest=f"sha256:{hexdigest}", media_type=MEDIA_TYPES[algorithm])


def build_layer(name: str, entries: Iterable[Entry], epoch: int, level: int,
                algorithm: str = "gzip") -> Layer:
    """The layer of ENTRIES with its blob in memory (the same bytes as write_layer's): for small
    layers and tests; builds use write_layer."""
    from xarch.oci.compress import compressed_stream

    ordered = sorted_entries(fix_hardlinks(list(entries)))
    tar = _Counted(tar_chunks(ordered, epoch))
    blob = b"".join(compressed_stream(tar, algorithm, level))
    return Layer(name, tar.digest, blob, tar.size, len(ordered), media_type=MEDIA_TYPES[algorithm])
