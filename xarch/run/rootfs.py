"""Trees on disk: write a Tree out as a stage root, and read paths back from one.

Build steps need real folders (the sandbox, QEMU, compilers); the image needs Trees.
Owners never go to disk and never come back from it: a stage root belongs to whoever
the sandbox maps to uid 0 (xarch.run.sandbox.hand_over), and everything read back is
owned 0:0 (a `copy:` may say `owner:`), so the host account that ran the build cannot
reach an image. Modes are kept exactly as the tree says, and read back exactly as the
steps left them.
"""

from __future__ import annotations

import errno
import os
import posixpath
import shutil
import stat
from pathlib import Path

from xarch.errors import BuildError
from xarch.oci.tree import Entry, Tree, normalize_path
from xarch.run.fsmeta import HardLinks, kept_xattrs

MAX_SYMLINK_HOPS = 40


def resolve_in_root(root: Path, relative: str, follow_last: bool = False) -> Path:
    """Where RELATIVE is inside ROOT, resolving symlinks as a chroot would.

    An absolute link target starts again at ROOT and ".." stops at ROOT, so no stage
    symlink (`/out/dir -> /etc`) can make xarch read or write the host's files.
    """
    parts = [p for p in relative.split("/") if p not in ("", ".")]
    current: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if current:
                current.pop()
            continue
        candidate = root.joinpath(*current, part)
        if candidate.is_symlink() and (parts or follow_last):
            hops += 1
            if hops > MAX_SYMLINK_HOPS:
                raise BuildError(f"/{relative}: too many levels of symbolic links in the stage")
            target = os.readlink(candidate)
            if target.startswith("/"):
                current = []
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            continue
        current.append(part)
    return root.joinpath(*current)


def materialize(tree: Tree, root: Path, farm_owner: int | None = None, make_root: bool = False) -> None:
    """Write every entry of TREE under ROOT (which must exist, unless MAKE_ROOT).

    FARM_OWNER (a host uid): ROOT is an overlayfs lower layer (xarch.run.overlay), never
    written after this. A file whose bytes are in the cache of unpacked package trees, with
    the entry's mode and owned by FARM_OWNER, becomes a hard link to them (no data copied);
    everything else made here is handed to FARM_OWNER, so the step may write it (through
    the overlay's copy-up).
    """
    from xarch.sources.debian.pkgtrees import known_sha256

    if farm_owner == os.geteuid():
        chown_to = None  # without root: what this process makes is its own already (steps' uid 0)
    else:
        chown_to = farm_owner
    if make_root:
        root.mkdir(mode=0o755)
        if chown_to is not None:
            os.lchown(root, chown_to, chown_to)
    deferred_dirs: list[tuple[Path, Entry]] = []
    real_dirs = {""}  # tree paths made here as folders: their children need no symlink walk
    for entry in tree:  # sorted by path: parents before children
        parent = posixpath.dirname(entry.path)
        if parent in real_dirs:
            target = root / entry.path
        else:
            target = resolve_in_root(root, entry.path)
        if entry.type == "dir":
            target.mkdir(parents=True, exist_ok=True)
            deferred_dirs.append((target, entry))
            if target == root / entry.path:
                real_dirs.add(entry.path)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if os.path.lexists(target):
            target.unlink()
        if entry.type == "symlink":
            os.symlink(entry.linkname, target)
        elif entry.type == "hardlink":
            os.link(resolve_in_root(root, entry.linkname), target)
            continue
        elif farm_owner is not None and entry.source is not None and known_sha256(entry.source) is not None \
                and _linkable(entry.source, entry.mode, farm_owner) and _linked(entry.source, target):
            continue
        else:
            if entry.data is None and entry.source is not None:
                shutil.copyfile(entry.source, target)  # in the kernel (copy_file_range), a reflink if it can
            else:
                target.write_bytes(entry.read())
            if chown_to is not None:
                os.lchown(target, chown_to, chown_to)  # before the mode: chown clears set-id bits
            os.chmod(target, entry.mode)
            continue
        if chown_to is not None:
            os.lchown(target, chown_to, chown_to)
    # Folders last: a read-only folder mode must not stop its own children being written.
    for target, entry in reversed(deferred_dirs):
        if chown_to is not None:
            os.lchown(target, chown_to, chown_to)
        os.chmod(target, entry.mode)


def hand_over_all(root: Path, owner: int) -> None:
    """Make OWNER own everything under ROOT (a farm being made: the cached files it links are
    OWNER's already, see materialize). Nothing to do when OWNER is this process's uid (no root):
    then everything is its own already, with its own gid (which a user namespace maps alone)."""
    if owner == os.geteuid():
        return
    for folder, dirs, files in os.walk(root):
        for name in (".", *dirs, *files):
            path = os.path.join(folder, name)
            info = os.lstat(path)
            if info.st_uid != owner or info.st_gid != owner:
                os.lchown(path, owner, owner)


def _linked(source: Path, target: Path) -> bool:
    """Hard-link TARGET to SOURCE; False when the file system refuses (too many links, another
    file system): then the bytes are copied."""
    try:
        os.link(source, target)
    except OSError as error:
        if error.errno in (errno.EMLINK, errno.EXDEV, errno.EPERM):
            return False
        raise
    return True


def _linkable(source: Path, mode: int, owner: int) -> bool:
    info = os.lstat(source)
    return stat.S_ISREG(info.st_mode) and stat.S_IMODE(info.st_mode) == mode and info.st_uid == owner


def _entry_from_disk(path: Path, image_path: str, links: HardLinks | None = None) -> Entry | None:
    """PATH as an image entry owned 0:0: its owner on disk is the build host's account.
    A file LINKS has seen under another inode path is a hard link to that path; a file
    keeps its file capabilities (xarch.run.fsmeta)."""
    info = path.lstat()
    mode = stat.S_IMODE(info.st_mode)
    if stat.S_ISLNK(info.st_mode):
        return Entry(image_path, "symlink", 0o777, 0, 0, linkname=os.readlink(path))
    if stat.S_ISDIR(info.st_mode):
        return Entry(image_path, "dir", mode, 0, 0)
    if stat.S_ISREG(info.st_mode):
        first = links.seen(info, image_path) if links is not None else None
        if first is not None:
            return Entry(image_path, "hardlink", mode, 0, 0, linkname=first)
        return Entry(image_path, "file", mode, 0, 0, source=path, xattrs=kept_xattrs(path))
    return None  # devices, sockets, fifos are never taken from a stage


def harvest(root: Path, source: str, destination: str, what: str) -> list[Entry]:
    """Entries for SOURCE (a path in the stage ROOT) placed at DESTINATION in the image.

    Every entry is owned 0:0, whoever ran the build (StageResult.take applies `owner:`).
    A folder is taken with everything below it, walked in sorted order.
    """
    relative = normalize_path(source)
    path = resolve_in_root(root, relative)
    # lexists: exists() would follow a stage symlink out to the host (/out/x -> /proc/1/root/...).
    if not os.path.lexists(path):
        raise BuildError(f"{what}: /{relative} does not exist in the stage")
    destination = normalize_path(destination)
    links = HardLinks()
    first = _entry_from_disk(path, destination, links)
    if first is None:
        raise BuildError(f"{what}: /{relative} is not a file, folder or symlink")
    entries = [first]
    if first.type == "dir":
        for folder, dirs, files in os.walk(path):
            dirs.sort()
            rel = Path(folder).relative_to(path).as_posix()
            for name in sorted(dirs + files):
                image_path = posixpath.join(destination, "" if rel == "." else rel, name)
                entry = _entry_from_disk(Path(folder) / name, normalize_path(image_path), links)
                if entry is not None:
                    entries.append(entry)
    return entries


def harvest_tree(tree: Tree, source: str, destination: str, what: str) -> list[Entry]:
    """The same as `harvest`, from a Tree (e.g. what a buildx stage produced)."""
    from dataclasses import replace

    relative = normalize_path(source)
    destination = normalize_path(destination)
    prefix = relative + "/" if relative else ""
    found = [e for e in tree if e.path == relative or (e.path.startswith(prefix))]
    if not found and relative:
        raise BuildError(f"{what}: /{relative} does not exist in the stage")
    result = []
    for entry in found:
        rest = entry.path[len(relative):].lstrip("/") if relative else entry.path
        new_path = normalize_path(posixpath.join(destination, rest)) if rest else destination
        linkname = entry.linkname
        if entry.type == "hardlink":
            # Hard links are re-rooted with the rest of the folder; outside it they become copies.
            target = tree.get(entry.linkname)
            if entry.linkname.startswith(prefix):
                linkname = normalize_path(posixpath.join(destination, entry.linkname[len(prefix):]))
            elif target is not None and target.type == "file":
                result.append(replace(entry, path=new_path, type="file", linkname="", data=target.data,
                                      source=target.source))
                continue
        result.append(replace(entry, path=new_path, linkname=linkname))
    return result
