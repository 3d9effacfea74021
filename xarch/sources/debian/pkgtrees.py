"""Unpacked package trees: each .deb's data.tar is decompressed once, into a content-addressed cache.

Layout: <store root>/trees/ (mode 0700) / <key>/ {manifest.json, data/<n>}. KEY is the sha256
of UNPACKER_VERSION, the .deb's sha256 (the .deb itself entered the store only after its
sha256 matched the lock) and the host uid that owns the files. manifest.json lists every
data.tar member in order (name, tar type, mode, owner, mtime, link target; for a regular file
its size, sha256 and data file), so `xarch.sources.debian.deb.unpack` places the members
exactly as from the tar, with each file's bytes named by path instead of held in memory.

An entry is written in a temporary folder (`.tmp-*`) and renamed into place whole: a build
killed half-way leaves a `.tmp-*` folder that nothing reads (the next build removes it once
its writer is gone), never a half entry. Each data file is checked when its sha256 is
computed on entry; on every use the manifest must parse and name this key, and every data
file must still have its recorded size, mtime, owner and mode (a stat each, not a re-read of
~250 MB per build); an entry that fails is deleted and unpacked again, never served.

Data files are read-only for the build: stage roots hard-link them only below a read-only
overlayfs lower layer (xarch.run.overlay), so no step, replay or tool ever opens one for
writing. The folder is 0700, so no other host account (the sandbox id included) can reach it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import secrets
import shutil
import stat
import tarfile
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from xarch.oci.digest import canonical_json, file_sha256
from xarch.oci.store import Store

if TYPE_CHECKING:
    from xarch.oci.tree import Tree
    from xarch.sources.debian.deb import Deb

# Changes whenever what an entry holds or how it is read changes: old entries are then unused.
UNPACKER_VERSION = "xarch-pkgtree/2"
MANIFEST = "manifest.json"

# Every data file the cache has vouched for in this process (path → (sha256, its entry's
# generation)), so a stage root's digest (tree_digest) needs no re-read of the files.
_KNOWN: dict[Path, tuple[str, str]] = {}
# One lock per entry folder: the platforms of a build run in threads and often need the same
# .deb (Architecture: all), and one thread's check-discard-write must not meet another's.
_ENTRY_LOCKS: dict[str, threading.Lock] = {}
_ENTRY_LOCKS_GUARD = threading.Lock()


@dataclass(frozen=True)
class Member:
    """One data.tar member: INFO as tarfile read it; DATA the cached bytes of a regular file."""

    info: tarfile.TarInfo
    data: Path | None = None


@dataclass(frozen=True)
class PackageTree:
    """One cached entry: its data.tar MEMBERS in order and the .deb's CONTROL_FILES (name → bytes)."""

    key: str
    folder: Path
    members: tuple[Member, ...]
    control_files: dict[str, bytes]


def tree_key(deb_sha256: str, owner: int) -> str:
    """The cache key of the unpacked tree of the .deb whose sha256 is DEB_SHA256, owned by OWNER."""
    material = f"{UNPACKER_VERSION}\0{deb_sha256}\0{owner}"
    return hashlib.sha256(material.encode()).hexdigest()


def known_sha256(path: Path) -> str | None:
    """The sha256 of a data file this process got from the cache, or None for any other path."""
    known = _KNOWN.get(path)
    return known[0] if known else None


class PackageTrees:
    """The cache of unpacked package trees in STORE, files owned by host uid OWNER."""

    def __init__(self, store: Store, owner: int | None = None) -> None:
        self.root = store.root / "trees"
        self.owner = os.geteuid() if owner is None else owner

    def folder(self, key: str) -> Path:
        """Where the entry of KEY (tree_key) lives: <store root>/trees/KEY."""
        return self.root / key

    def get(self, deb_sha256: str, deb: Deb | Callable[[], Deb]) -> PackageTree:
        """The unpacked tree of the .deb whose sha256 is DEB_SHA256: from the cache when its entry
        is whole, else unpacked now from DEB (read_deb's result, or a callable giving it, called
        only then; UnpackError for an unreadable .deb)."""
        key = tree_key(deb_sha256, self.owner)
        with _ENTRY_LOCKS_GUARD:
            lock = _ENTRY_LOCKS.setdefault(str(self.folder(key)), threading.Lock())
        with lock:
            found = self._load(key)
            if found is None:
                self._write(key, deb if not callable(deb) else deb())
                found = self._load(key)
                if found is None:
                    raise OSError(f"{self.folder(key)}: the package tree just written does not read back")
        return found

    def _load(self, key: str) -> PackageTree | None:
        folder = self.folder(key)
        try:
            raw = (folder / MANIFEST).read_bytes()
        except FileNotFoundError:
            if folder.exists():
                self._discard(folder)  # a folder without its manifest is no entry
            return None
        except OSError:
            self._discard(folder)
            return None
        try:
            record = json.loads(raw)
            if record.get("version") != UNPACKER_VERSION or record.get("key") != key:
                raise ValueError("another key or unpacker version")
            members = []
            generation = str(record["generation"])
            data_folder = os.path.join(folder, "data")
            for item in record["members"]:
                info = tarfile.TarInfo(item["name"])
                info.type = item["type"].encode("latin-1")
                info.mode, info.uid, info.gid = item["mode"], item["uid"], item["gid"]
                info.mtime = item["mtime"]
                info.linkname = item["linkname"]
                data = None
                if "data" in item:
                    info.size = item["size"]
                    name = os.path.join(data_folder, item["data"])
                    state = os.lstat(name)
                    if (not stat.S_ISREG(state.st_mode) or state.st_size != info.size
                            or state.st_mtime_ns != info.mtime * 1_000_000_000 or state.st_uid != self.owner
                            or stat.S_IMODE(state.st_mode) != info.mode & 0o7777):
                        raise ValueError(f"{name} changed since it was unpacked")
                    data = Path(name)
                    _KNOWN[data] = (item["sha256"], generation)
                members.append(Member(info, data))
            control = {name: bytes.fromhex(value) for name, value in record["control"].items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            self._discard(folder)  # damaged: unpacked again, never served
            return None
        return PackageTree(key, folder, tuple(members), control)

    def _discard(self, folder: Path) -> None:
        try:
            dead = Path(tempfile.mkdtemp(dir=self.root, prefix=".tmp-dead-"))
            os.rename(folder, dead / "entry")
        except OSError:
            return
        shutil.rmtree(dead, ignore_errors=True)

    def _write(self, key: str, deb: Deb) -> None:
        from xarch.sources.debian.deb import open_data

        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)  # no other account, the sandbox id included, may reach a file here
        self._remove_leftovers()
        tmp = Path(tempfile.mkdtemp(dir=self.root, prefix=f".tmp-{os.getpid()}-"))
        try:
            (tmp / "data").mkdir()
            items: list[dict[str, object]] = []
            with open_data(deb) as tar:
                for info in tar:
                    item: dict[str, object] = {
                        "name": info.name, "type": info.type.decode("latin-1"), "mode": info.mode,
                        "uid": info.uid, "gid": info.gid, "mtime": int(info.mtime), "linkname": info.linkname,
                    }
                    if info.isfile():
                        extracted = tar.extractfile(info)
                        data = extracted.read() if extracted else b""
                        name = str(len(items))
                        self._data_file(tmp / "data" / name, data, info.mode & 0o7777, int(info.mtime))
                        item.update(size=len(data), data=name, sha256=hashlib.sha256(data).hexdigest())
                    items.append(item)
            # A fresh value per write: a farm names the generations it links (farm_key), and an
            # entry unpacked again after damage gets new files (inode numbers are reused).
            record = {"version": UNPACKER_VERSION, "key": key, "deb": deb.what, "members": items,
                      "generation": secrets.token_hex(16),
                      "control": {name: data.hex() for name, data in deb.control_files.items()}}
            with (tmp / MANIFEST).open("wb") as handle:
                handle.write(json.dumps(record, ensure_ascii=True, separators=(",", ":")).encode())
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o755)
            try:
                os.rename(tmp, self.folder(key))  # whole or not at all
            except OSError:
                if not (self.folder(key) / MANIFEST).is_file():
                    raise  # else another build put the same tree first
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    def _data_file(self, path: Path, data: bytes, mode: int, mtime: int) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            with io.FileIO(fd, "wb", closefd=False) as handle:
                handle.write(data)
            if self.owner != os.geteuid():
                os.fchown(fd, self.owner, self.owner)  # before the mode: chown clears set-id bits
            os.fchmod(fd, mode)
            os.utime(fd, ns=(mtime * 1_000_000_000, mtime * 1_000_000_000))
        finally:
            os.close(fd)

    def _remove_leftovers(self) -> None:
        """`.tmp-PID-*` folders of writers that are gone (a killed build's half entries)."""
        for leftover in self.root.glob(".tmp-*"):
            parts = leftover.name.split("-")
            pid = parts[1] if len(parts) > 2 else ""
            if pid == "dead" or (pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid))):
                shutil.rmtree(leftover, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def tree_digest(tree: Tree) -> str:
    """sha256 over every entry of TREE (path, type, mode, link target, content sha256) in path
    order: what a stage root materialized from TREE holds, without reading files the cache
    vouched for. Owners and mtimes are left out, as a stage root on disk has neither."""
    hasher = hashlib.sha256()
    for entry in tree:
        content = ""
        if entry.type == "file":
            if entry.data is not None:
                content = hashlib.sha256(entry.data).hexdigest()
            else:
                assert entry.source is not None
                content = known_sha256(entry.source) or file_sha256(entry.source)
        record = [entry.path, entry.type, entry.mode, entry.linkname, content]
        hasher.update(canonical_json(record) + b"\n")
    return hasher.hexdigest()


def farm_key(tree: Tree, owner: int) -> str:
    """The key of a stage root's farm (xarch.run.overlay) made of TREE for OWNER: TREE's digest and
    the generation of every cached entry it links, so a package tree unpacked again (its old
    entry found damaged and discarded) never leaves a farm linking the damaged bytes in use."""
    hasher = hashlib.sha256(f"xarch-farm/1\0{tree_digest(tree)}\0{owner}\n".encode())
    for entry in tree:
        known = _KNOWN.get(entry.source) if entry.type == "file" and entry.source is not None else None
        if known is not None:
            hasher.update(f"{known[1]}\n".encode())
    return hasher.hexdigest()
