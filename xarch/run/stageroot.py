"""A stage root on disk, assembled from its tree without copying cached package files.

`assemble` makes the folder a step sees as `/`: when xarch may mount (in its private mount
namespace, as root or in a user namespace of its own without root: xarch.run.overlay), an
overlayfs mount whose read-only lower layer is a *farm* (the tree's folders, symlinks and small
files, and a hard link to the cached bytes of every package file: xarch.sources.debian.pkgtrees),
and whose upper layer, in the build's folder, takes every write. Otherwise every file is written
(xarch.run.rootfs.materialize), from the cached bytes.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xarch.oci.digest import canonical_json
from xarch.oci.store import Store
from xarch.oci.tree import Tree
from xarch.run import overlay
from xarch.run.rootfs import hand_over_all, materialize
from xarch.sources.debian.pkgtrees import PackageTrees, farm_key, tree_digest


def assemble_root(tree: Tree, store: Store, base: Path, root: Path) -> Path | None:
    """Make ROOT (an empty folder) hold TREE; BASE (ROOT's parent, the stage's build folder)
    holds the overlay's upper and work folders when ROOT is a mount. Returns the farm
    mounted, or None when every file was written instead."""
    if overlay.available():
        from xarch.run.sandbox import host_owner

        lower = farm(tree, PackageTrees(store, host_owner()))
        if mount_farm(store, lower, base, root):
            return lower
    materialize(tree, root)
    return None


def farm(tree: Tree, trees: PackageTrees) -> Path:
    """The overlay lower folder holding TREE, all of it owned by TREES' owner (the sandbox id).

    Kept in the cache folder (hard links need its file system; 0700, so no other account
    enters it), keyed by xarch.sources.debian.pkgtrees.farm_key: a rebuild with the same root makes nothing.
    Written in a temporary folder renamed into place whole (a killed build leaves a `.tmp-*`
    folder nothing reads); never written after: overlayfs only reads its lower layer."""
    trees.root.mkdir(parents=True, exist_ok=True)
    os.chmod(trees.root, 0o700)
    made = trees.root / f"farm-{farm_key(tree, trees.owner)}"
    if (made / "root").is_dir():
        return made / "root"
    tmp = Path(tempfile.mkdtemp(dir=trees.root, prefix=f".tmp-{os.getpid()}-farm-"))
    try:
        materialize(tree, tmp / "root", farm_owner=trees.owner, make_root=True)
        hand_over_all(tmp / "root", trees.owner)  # also folders made only as parents
        try:
            os.rename(tmp, made)
        except OSError:
            if not (made / "root").is_dir():
                raise  # else another build made the same farm first
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return made / "root"


# A stage root whose tree is a function of locked packages alone (no `files:`, no `copy:`) is
# remembered: its key → its tree's digest, its farm, the files the farm links and the lines
# making it printed. A rebuild with the same key mounts the farm without building the tree
# (no manifest read, no dpkg database, no digest): what makes a one-line edit rebuild cheap.
RECORD_VERSION = "xarch-stageroot/1"


@functools.cache
def code_digest() -> str:
    """sha256 of xarch's own code and data files: a tree made by other code is another key."""
    package = Path(__file__).parent
    hasher = hashlib.sha256()
    for path in sorted(package.rglob("*")):
        if path.suffix in (".py", ".yaml") and path.is_file():
            hasher.update(path.relative_to(package).as_posix().encode() + b"\0")
            hasher.update(hashlib.sha256(path.read_bytes()).digest())
    return hasher.hexdigest()


def record_key(material: dict[str, Any]) -> str:
    """The key of a stage root record: MATERIAL (JSON-able: the locked packages, platforms,
    epoch, …), xarch's code and the record format."""
    full = {"version": RECORD_VERSION, "code": code_digest(), **material}
    return hashlib.sha256(canonical_json(full)).hexdigest()


@dataclass(frozen=True)
class RootRecord:
    """What a rebuild needs of an assembled stage root: the tree's digest (the step key's root),
    the farm folder, and the lines that making it printed (method name, message) to say again."""

    digest: str
    farm: Path
    said: tuple[tuple[str, str], ...]


class Recorder:
    """A Reporter stand-in that passes info/detail/scripts lines on and keeps them."""

    def __init__(self, reporter: Any) -> None:
        self.reporter = reporter
        self.said: list[tuple[str, str]] = []

    def _say(self, method: str, message: str) -> None:
        self.said.append((method, message))
        getattr(self.reporter, method)(message)

    def info(self, message: str) -> None:
        """Pass MESSAGE on as the Reporter's info line, and keep it."""
        self._say("info", message)

    def detail(self, message: str) -> None:
        """Pass MESSAGE on as the Reporter's detail line (-v), and keep it."""
        self._say("detail", message)

    def scripts(self, message: str) -> None:
        """Pass MESSAGE on as the Reporter's scripts line (--show-scripts), and keep it."""
        self._say("scripts", message)


def _records(store: Store) -> Path:
    return store.root / "trees" / "roots"


def load_record(store: Store, key: str) -> RootRecord | None:
    """The record of KEY when it and its farm are whole: every file the farm links still has the
    size and mtime it had (a damaged package tree file is never served); else None."""
    if not overlay.available():
        return None
    path = _records(store) / f"{key}.json"
    try:
        value = json.loads(path.read_bytes())
        farm_root = Path(value["farm"])
        if farm_root.parent.parent != store.root / "trees" or not farm_root.is_dir():
            raise ValueError("no farm")
        folder = os.open(farm_root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for name, size, mtime_ns in value["linked"]:
                # relative to the farm's fd: no path joined per file (~9,000 for a C toolchain)
                state = os.lstat(name, dir_fd=folder)
                if state.st_size != size or state.st_mtime_ns != mtime_ns:
                    raise ValueError(f"{name} changed")
        finally:
            os.close(folder)
        return RootRecord(str(value["digest"]), farm_root,
                          tuple((str(m), str(line)) for m, line in value["said"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        path.unlink(missing_ok=True)  # damaged: the root is made again, never served
        return None


def save_record(store: Store, key: str, tree: Tree, farm_root: Path, said: list[tuple[str, str]]) -> None:
    """Remember the root made of TREE in FARM_ROOT under KEY (atomically)."""
    from xarch.sources.debian.pkgtrees import known_sha256

    linked = []
    for entry in tree:
        if entry.type == "file" and entry.source is not None and known_sha256(entry.source) is not None:
            state = os.lstat(entry.source)
            linked.append([entry.path, state.st_size, state.st_mtime_ns])
    value = {"digest": tree_digest(tree), "farm": str(farm_root), "said": said, "linked": linked}
    folder = _records(store)
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(json.dumps(value, ensure_ascii=True).encode())
        os.replace(tmp, folder / f"{key}.json")
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def mount_farm(store: Store, farm_root: Path, base: Path, root: Path) -> bool:
    """Mount the overlay of FARM_ROOT at ROOT (upper and work folders in BASE); False when it cannot."""
    from xarch.run.sandbox import host_owner

    owner = host_owner()
    upper, work = base / "upper", base / "work"
    upper.mkdir(exist_ok=True)
    work.mkdir(exist_ok=True)
    if owner != os.geteuid():
        os.lchown(upper, owner, owner)  # the root folder the step sees: its own
    os.chmod(upper, 0o755)
    return overlay.mount(farm_root, upper, work, root)
