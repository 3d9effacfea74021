"""Reading .deb files in pure Python and unpacking them into an image `Tree`.

Nothing from a package is ever executed. What a package may put into the tree is
checked: no path outside the root, no writing through a symlink that climbs out of the
root, no hard link to something outside, no device nodes or FIFOs.
"""

from __future__ import annotations

import io
import lzma
import posixpath
import tarfile
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import TYPE_CHECKING

from xarch.oci.tree import Entry, Tree, TreeError, normalize_path
from xarch.sources.debian.errors import UnpackError

if TYPE_CHECKING:
    from debian.deb822 import Deb822

    from xarch.sources.debian.pkgtrees import PackageTree

AR_MAGIC = b"!<arch>\n"
AR_HEADER = 60
MAINTAINER_SCRIPTS = ("preinst", "postinst", "prerm", "postrm", "config", "triggers")
# Top-level directories that are symlinks into /usr on a merged-/usr system.
USRMERGE_DIRS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32", "libo32")
MAX_LINK_HOPS = 40


def read_ar(data: bytes, what: str) -> dict[str, bytes]:
    """Members of an ar archive (the container format of .deb).

    Written by hand: no maintained pure-Python ar reader exists (PyPI's `arpy` and
    `unix-ar` are unmaintained), the format is a 60-byte header per member, and a .deb
    uses only its simplest form (no symbol table, no long-name table).
    """
    if not data.startswith(AR_MAGIC):
        raise UnpackError(f"{what} is not a .deb (no ar header)")
    members: dict[str, bytes] = {}
    offset = len(AR_MAGIC)
    while offset < len(data):
        header = data[offset:offset + AR_HEADER]
        if len(header) < AR_HEADER or header[58:60] != b"`\n":
            raise UnpackError(f"{what}: corrupt ar member header at byte {offset}")
        name = header[0:16].decode("ascii", "replace").rstrip(" ").rstrip("/")
        try:
            size = int(header[48:58].decode("ascii").strip())
        except ValueError:
            raise UnpackError(f"{what}: corrupt ar member size at byte {offset}") from None
        start = offset + AR_HEADER
        if start + size > len(data):
            raise UnpackError(f"{what}: ar member {name} is truncated")
        members[name] = data[start:start + size]
        offset = start + size + (size & 1)  # members are padded to an even offset
    return members


def _open_tar(name: str, blob: bytes, what: str) -> tarfile.TarFile:
    if name.endswith(".zst"):
        # tarfile has no zstd before Python 3.14; zstandard is the maintained binding.
        try:
            import zstandard
        except ImportError:
            raise UnpackError(f"{what}: {name} needs the zstandard module (pip install zstandard)") from None
        blob = zstandard.ZstdDecompressor().decompressobj().decompress(blob)
    elif name.endswith(".xz"):
        blob = lzma.decompress(blob)  # tarfile would do it too; this gives one error path
    try:
        return tarfile.open(fileobj=io.BytesIO(blob), mode="r:*")
    except (tarfile.TarError, lzma.LZMAError, OSError) as exc:
        raise UnpackError(f"{what}: cannot read {name}: {exc}") from None


def _member(members: dict[str, bytes], prefix: str, what: str) -> tuple[str, bytes]:
    for suffix in ("", ".gz", ".xz", ".zst", ".bz2"):
        if prefix + suffix in members:
            return prefix + suffix, members[prefix + suffix]
    raise UnpackError(f"{what}: no {prefix}.* member")


@dataclass
class Deb:
    """A .deb read into memory: its control files and its data tar."""

    what: str
    control_files: dict[str, bytes]
    data_name: str
    data_blob: bytes

    @property
    def control(self) -> Deb822:
        # python-debian loads here, when a package is read: `resolve` (the image's symlinks, which
        # every build settles) must not cost its import.
        from debian.deb822 import Deb822

        return Deb822(self.control_files["control"].decode("utf-8"))

    @property
    def scripts(self) -> list[str]:
        return [name for name in MAINTAINER_SCRIPTS if name in self.control_files]

    @property
    def conffiles(self) -> list[str]:
        text = self.control_files.get("conffiles", b"").decode("utf-8", "replace")
        return [line.strip() for line in text.splitlines() if line.strip().startswith("/")]


def read_deb(path: Path, what: str | None = None) -> Deb:
    """Parse the .deb at PATH (deb(5): an ar archive with debian-binary 2.0, control.tar.* and
    data.tar.*); WHAT names it in errors (default: the file name). Raises UnpackError (exit 2)
    when it is not such an archive."""
    what = what or path.name
    members = read_ar(path.read_bytes(), what)
    if members.get("debian-binary", b"").strip() != b"2.0":
        raise UnpackError(f"{what}: not a format 2.0 .deb")
    control_name, control_blob = _member(members, "control.tar", what)
    data_name, data_blob = _member(members, "data.tar", what)
    control_files = {}
    with _open_tar(control_name, control_blob, what) as tar:
        for info in tar:
            name = info.name.removeprefix("./")
            if info.isfile() and "/" not in name:
                extracted = tar.extractfile(info)
                control_files[name] = extracted.read() if extracted else b""
    if "control" not in control_files:
        raise UnpackError(f"{what}: control.tar has no control file")
    return Deb(what, control_files, data_name, data_blob)


@dataclass(frozen=True)
class PathFilter:
    """dpkg's --path-exclude/--path-include: shell patterns on "/"-rooted paths; a path
    matching an exclude is dropped unless it also matches an include (e.g. exclude
    /usr/share/doc/*, include /usr/share/doc/*/copyright). Parents of kept paths are
    made as needed."""

    exclude: tuple[str, ...] = ()
    include: tuple[str, ...] = ()

    def keeps(self, path: str) -> bool:
        """Whether PATH (no leading /) is unpacked: not matched by an exclude, or matched by an include."""
        rooted = "/" + path
        if not any(fnmatchcase(rooted, pattern) for pattern in self.exclude):
            return True
        return any(fnmatchcase(rooted, pattern) for pattern in self.include)


@dataclass
class Unpacked:
    """What unpacking one .deb added: its paths as the package names them (for dpkg's .list file)."""

    paths: list[str] = field(default_factory=list)  # as the package names them, for .list


def open_data(deb: Deb) -> tarfile.TarFile:
    """DEB's data.tar, decompressed (UnpackError when it cannot be read)."""
    return _open_tar(deb.data_name, deb.data_blob, deb.what)


def unpack(deb: Deb, tree: Tree, merged_usr: bool = True, path_filter: PathFilter | None = None,
           origin: str = "", unpacked: PackageTree | None = None) -> Unpacked:
    """Add DEB's data.tar to TREE (later packages replace earlier files, as with dpkg).

    ORIGIN labels the regular files for error messages (e.g. "package busybox 1.35 (arm64)").
    UNPACKED: DEB's data.tar from the cache of unpacked trees (sources/debian/pkgtrees.py): the same members
    placed the same way, each file's bytes named by its cached path (Entry.source) instead of
    decompressed again.
    """
    result = Unpacked()
    if unpacked is not None:
        for member in unpacked.members:
            _unpack_one(deb, tree, member.info, member.data, merged_usr, path_filter, origin, result)
        return result
    with open_data(deb) as tar:
        for info in tar:
            _unpack_one(deb, tree, info, tar, merged_usr, path_filter, origin, result)
    return result


def _unpack_one(deb: Deb, tree: Tree, info: tarfile.TarInfo, content: tarfile.TarFile | Path | None,
                merged_usr: bool, path_filter: PathFilter | None, origin: str, result: Unpacked) -> None:
    try:
        package_path = normalize_path(info.name)
    except TreeError:
        message = f"{deb.what}: member {info.name!r} escapes the image root; refused"
        raise UnpackError(message) from None
    if not package_path or (path_filter is not None and not path_filter.keeps(package_path)):
        return
    result.paths.append(package_path)
    _place(deb, tree, content, info, package_path, merged_usr, path_filter, origin)


def _place(deb: Deb, tree: Tree, content: tarfile.TarFile | Path | None, info: tarfile.TarInfo, path: str,
           merged_usr: bool, path_filter: PathFilter | None = None, origin: str = "") -> None:
    """Place one member; a regular file's bytes come from CONTENT: the open data.tar, or the
    member's file in the cache of unpacked trees."""
    what = f"{deb.what}: {path}"
    if info.ischr() or info.isblk() or info.isfifo():
        # Refused, not dropped: Debian policy forbids them in packages, so one is a sign of
        # a hostile or broken .deb; and the container runtime provides /dev anyway.
        kind = "FIFO" if info.isfifo() else "device node"
        raise UnpackError(f"{what} is a {kind}; packages may not ship those (refused)")
    if merged_usr:
        _ensure_usrmerge_link(tree, path)
    mode, uid, gid, mtime = info.mode & 0o7777, info.uid, info.gid, int(info.mtime)
    target = resolve(tree, path, follow_last=False, what=what)
    _check_parent_is_directory(tree, target, what)
    if info.isdir():
        existing = tree.entries.get(target)
        if existing is not None and existing.type in ("dir", "symlink"):
            # As dpkg: an existing directory keeps its metadata, and an existing symlink
            # (bin -> usr/bin, var/run -> /run) stays a symlink.
            return
        if existing is not None:
            raise UnpackError(f"{what}: the image has a {existing.type} at {target}, the package a directory")
        tree.add_parents(target)
        tree.add(Entry(target, "dir", mode, uid, gid, mtime))
        return
    existing = tree.entries.get(target)
    if existing is not None and existing.type == "dir":
        raise UnpackError(f"{what}: the image has a directory at {target}, the package a {_kind(info)}")
    tree.add_parents(target)
    if info.issym():
        if not info.linkname or "\x00" in info.linkname:
            raise UnpackError(f"{what}: symlink with an invalid target")
        # Stored as is, never followed on the host; inside the tree it is followed only to
        # place later members, and only within the image root (see resolve).
        tree.add(Entry(target, "symlink", mode or 0o777, uid, gid, mtime, linkname=info.linkname,
                       origin=origin))
    elif info.islnk():
        try:
            link_path = normalize_path(info.linkname)
        except TreeError:
            message = f"{what}: hard link to {info.linkname!r} escapes the image root; refused"
            raise UnpackError(message) from None
        link_target = resolve(tree, link_path, follow_last=False, what=what)
        original = tree.entries.get(link_target)
        if original is None and path_filter is not None and not path_filter.keeps(link_path):
            raise UnpackError(f"{what}: hard link to {info.linkname!r}, which the path filter drops; "
                              "include both or neither")
        if original is None or original.type not in ("file", "hardlink"):
            raise UnpackError(f"{what}: hard link to {info.linkname!r}, which the package did not ship first")
        if original.type == "hardlink":
            link_target = original.linkname
        tree.add(Entry(target, "hardlink", mode, uid, gid, mtime, linkname=link_target, origin=origin))
    elif info.isfile():
        if isinstance(content, Path):
            tree.add(Entry(target, "file", mode, uid, gid, mtime, source=content, origin=origin))
        else:
            assert content is not None
            extracted = content.extractfile(info)
            data = extracted.read() if extracted else b""
            tree.add(Entry(target, "file", mode, uid, gid, mtime, data=data, origin=origin))
    else:
        raise UnpackError(f"{what}: unsupported tar member type {info.type!r}")


def _check_parent_is_directory(tree: Tree, target: str, what: str) -> None:
    """Symlinks on the way are already followed; a file there would make a broken tree."""
    parent = posixpath.dirname(target)
    while parent:
        existing = tree.entries.get(parent)
        if existing is not None:
            if existing.type != "dir":
                raise UnpackError(f"{what}: {parent} is a {existing.type} in the image, not a directory")
            return
        parent = posixpath.dirname(parent)


def _kind(info: tarfile.TarInfo) -> str:
    return "symlink" if info.issym() else "hard link" if info.islnk() else "file"


def _ensure_usrmerge_link(tree: Tree, path: str) -> None:
    """On merged /usr, a package's bin/x lands in usr/bin/x through a bin -> usr/bin link."""
    top = path.split("/", 1)[0]
    # The folder itself too: libc6 ships ./lib64/ first, and its preinst makes lib64 the
    # link usr/lib64 on a merged-/usr system.
    if top in USRMERGE_DIRS and top not in tree.entries:
        tree.add_parents(f"usr/{top}/x")
        if f"usr/{top}" not in tree.entries:
            tree.add(Entry(f"usr/{top}", "dir", 0o755))
        tree.add(Entry(top, "symlink", 0o777, linkname=f"usr/{top}"))


def resolve(tree: Tree, path: str, follow_last: bool, what: str) -> str:
    """PATH with the tree's symlinks in its directories followed, as dpkg in a chroot of
    the image would: bin/x lands in usr/bin/x, var/run/x (var/run -> /run) in run/x.

    An absolute target is read from the image root, never from the host's; a target
    whose `..` climbs above the root is refused rather than clamped, since no honest
    package needs that.
    """
    pending = path.split("/")
    resolved: list[str] = []
    hops = 0
    while pending:
        part = pending.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            if not resolved:
                raise UnpackError(f"{what}: a symlink on the way leads outside the image root; refused")
            resolved.pop()
            continue
        current = "/".join([*resolved, part])
        entry = tree.entries.get(current)
        if entry is not None and entry.type == "symlink" and (pending or follow_last):
            hops += 1
            if hops > MAX_LINK_HOPS:
                raise UnpackError(f"{what}: too many levels of symlinks at {current}")
            if entry.linkname.startswith("/"):
                resolved = []  # the image root, not the host's
            pending = entry.linkname.split("/") + pending
            continue
        resolved.append(part)
    return "/".join(resolved)
