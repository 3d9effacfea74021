"""The file tree an image is made of, before it becomes tar layers.

Every producer (recipe files, unpacked .debs, build-stage output, a buildx tar) fills a
`Tree`; the layer writer only reads one. Paths are POSIX, relative to the image root,
with no leading "/" or "./" and no trailing "/" (e.g. "usr/bin/app"). Metadata here is
already what the image should carry: the writer adds nothing from the build host.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from xarch.errors import InputError

EntryType = Literal["file", "dir", "symlink", "hardlink"]


class TreeError(InputError, ValueError):
    """A path or entry that cannot be part of an image tree."""


def path_bytes(path: str) -> bytes:
    """The bytes of an image PATH, as they go into a tar header, a sort key or a hash.

    Paths are str everywhere. A file name that is not UTF-8 comes from the filesystem as
    Python's PEP 383 form (each undecodable byte a lone surrogate, what os.listdir gives with
    the UTF-8 filesystem encoding of every Linux CPython since 3.7), so "utf-8" with
    "surrogateescape" returns the original bytes, exactly, on every CPython 3.10-3.13.
    """
    return path.encode("utf-8", "surrogateescape")


def is_utf8(path: str) -> bool:
    """Whether PATH is valid UTF-8 text (no undecodable bytes carried as surrogates)."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def normalize_path(path: str) -> str:
    """Image-relative form of PATH; refuses paths that climb out of the root.

    Returns the path without leading `/`, `.` parts or repeated slashes; TreeError (exit 2) for a `..`
    part or a NUL byte.
    """
    if "\x00" in path:
        raise TreeError(f"path contains a NUL byte: {path!r}")
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            raise TreeError(f"path escapes the image root: {path!r}")
        parts.append(part)
    return "/".join(parts)


@dataclass(frozen=True)
class Entry:
    """One file, directory or link of an image tree.

    A regular file's bytes come from `data` (small, in memory) or `source` (a file on
    disk, read when the layer is written). `mtime` None means "the epoch".
    """

    path: str
    type: EntryType
    mode: int
    uid: int = 0
    gid: int = 0
    mtime: int | None = None
    linkname: str = ""
    data: bytes | None = None
    source: Path | None = None
    xattrs: tuple[tuple[str, bytes], ...] = ()
    # Where the entry came from, for error messages only ("files[0]", "copy[1]",
    # "package busybox 1.35 (arm64)"); never written to a layer, never compared.
    origin: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if self.mode < 0 or self.mode > 0o7777:
            raise TreeError(f"{self.path}: mode {oct(self.mode)} is not a permission mode")
        if self.type in ("symlink", "hardlink") and not self.linkname:
            raise TreeError(f"{self.path}: a {self.type} needs a target")
        if self.type == "file" and self.data is None and self.source is None:
            raise TreeError(f"{self.path}: a file needs data or a source")

    @property
    def size(self) -> int:
        if self.type != "file":
            return 0
        if self.data is not None:
            return len(self.data)
        assert self.source is not None
        return self.source.stat().st_size

    def head(self, size: int) -> bytes:
        """The first SIZE bytes of a regular file (fewer when it is shorter); b"" otherwise."""
        if self.type != "file":
            return b""
        if self.data is not None:
            return self.data[:size]
        assert self.source is not None
        with self.source.open("rb") as handle:
            return handle.read(size)

    def read(self) -> bytes:
        """A regular file's whole content (from memory or its source file); b"" for other types."""
        if self.data is not None:
            return self.data
        if self.source is not None:
            return self.source.read_bytes()
        return b""


@dataclass
class Tree:
    """A mutable mapping of image paths to entries; later additions replace earlier ones."""

    entries: dict[str, Entry] = field(default_factory=dict)

    def add(self, entry: Entry) -> None:
        """Put ENTRY at its normalized path (a hardlink's target normalized too), replacing what was
        there; the root itself is skipped. TreeError (exit 2) for a path that climbs out of the root.
        """
        path = normalize_path(entry.path)
        if not path:
            return  # the root itself is implied by every layer
        if path != entry.path:
            entry = replace(entry, path=path)
        if entry.type == "hardlink":
            entry = replace(entry, linkname=normalize_path(entry.linkname))
        self.entries[path] = entry

    def add_parents(self, path: str, mode: int = 0o755, uid: int = 0, gid: int = 0) -> None:
        """Create missing parent directories of PATH with the given metadata."""
        parent = posixpath.dirname(normalize_path(path))
        missing = []
        while parent and parent not in self.entries:
            missing.append(parent)
            parent = posixpath.dirname(parent)
        for directory in reversed(missing):
            self.entries[directory] = Entry(directory, "dir", mode, uid, gid)

    def get(self, path: str) -> Entry | None:
        """The entry at PATH (normalized first), or None."""
        return self.entries.get(normalize_path(path))

    def remove(self, path: str) -> None:
        """Remove PATH and everything below it."""
        path = normalize_path(path)
        prefix = path + "/"
        for key in [k for k in self.entries if k == path or k.startswith(prefix)]:
            del self.entries[key]

    def __contains__(self, path: object) -> bool:
        return isinstance(path, str) and normalize_path(path) in self.entries

    def __iter__(self) -> Iterator[Entry]:
        """Entries in the one order every writer uses: by path bytes."""
        for key in sorted(self.entries, key=path_bytes):
            yield self.entries[key]

    def __len__(self) -> int:
        return len(self.entries)
