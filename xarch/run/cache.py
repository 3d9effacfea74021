"""Step cache: what a step changed in the stage root, keyed by everything that can change it.

Layout: <store root>/steps/<key>/{changes.tar, meta.json}. An entry holds only the step's
delta (entries it added or changed, as a tar, plus the paths it deleted), not the whole
root: a Debian build stage is ~400 MB and a step usually touches a few files. Replaying
the deltas of steps 1..k onto the same starting root (the keys chain, and the first one
covers the stage's inputs) gives back the root after step k. An entry is built in a
temporary directory and renamed into place, so a reader never sees half an entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plumbum import local

from xarch.oci import store
from xarch.oci.digest import canonical_json, file_sha256
from xarch.oci.tree import is_utf8, path_bytes

KEY_VERSION = "xarch-step-cache/2"


def step_key(
    *,
    inputs: Mapping[str, Any],
    source_digest: str,
    step: str,
    network: bool,
    previous: str | None,
    platform: str,
    strategy: str,
    env: Mapping[str, str],
) -> str:
    """sha256 of the canonical JSON of what can change a step's result."""
    material = {
        "version": KEY_VERSION,
        "inputs": dict(inputs),
        "source": source_digest,
        "step": step,
        "network": network,
        "previous": previous,
        "platform": platform,
        "strategy": strategy,
        "env": dict(env),
    }
    return hashlib.sha256(canonical_json(material)).hexdigest()


def _json_name(name: str) -> str | list[str]:
    """NAME for canonical_json: as is when UTF-8, else ["bytes", hex] (which no str equals)."""
    return name if is_utf8(name) else ["bytes", path_bytes(name).hex()]


def _name_of(json_name: str | list[str]) -> str:
    """The inverse of _json_name."""
    if isinstance(json_name, str):
        return json_name
    return bytes.fromhex(json_name[1]).decode("utf-8", "surrogateescape")


def folder_digest(root: Path) -> str:
    """sha256 over the paths, kinds, modes and contents of the files under ROOT, in a fixed order."""
    hasher = hashlib.sha256()
    if not root.exists():
        return hasher.hexdigest()
    for path in sorted(root.rglob("*"), key=lambda p: path_bytes(p.relative_to(root).as_posix())):
        rel = _json_name(path.relative_to(root).as_posix())
        info = path.lstat()
        if path.is_symlink():
            record = ["l", rel, _json_name(os.readlink(path))]
        elif path.is_dir():
            record = ["d", rel, oct(info.st_mode & 0o7777)]
        else:
            record = ["f", rel, oct(info.st_mode & 0o7777), file_sha256(path)]
        hasher.update(canonical_json(record) + b"\n")
    return hasher.hexdigest()


# (file type, inode, ctime): the kernel moves ctime on every write, chmod, chown or
# rename, and a step cannot set it back, so an unchanged triple means an unchanged entry.
Stamp = tuple[int, int, int]


@dataclass(frozen=True)
class Snapshot:
    """The stamp of every entry under a root (relative POSIX paths), taken before a step."""

    stamps: Mapping[str, Stamp]

    @classmethod
    def of(cls, root: Path) -> Snapshot:
        """The stamps under ROOT. An overlay stage root (xarch.run.overlay) changes only in its
        upper folder, so only that is walked: a whiteout (a deleted path) and an opaque folder
        (one made anew over a lower folder) get stamp types of their own (see changes)."""
        from xarch.run.overlay import upper_of

        upper = upper_of(Path(root))
        return cls(_stamps(upper, overlay=True) if upper is not None else _stamps(root, overlay=False))

    def changes(self, after: Snapshot) -> tuple[list[str], list[str]]:
        """(changed or added paths, deleted paths) from self to AFTER, sorted.

        An entry whose type changed is both deleted and added, so that replaying
        removes the old one (a directory cannot be overwritten by a file) first.
        """
        changed = sorted(p for p, s in after.stamps.items() if self.stamps.get(p) != s and s[0] != WHITEOUT)
        deleted = {p for p, s in self.stamps.items() if p not in after.stamps or after.stamps[p][0] != s[0]}
        # Overlay roots: a new whiteout is a deleted path; a folder that became opaque was deleted
        # too, so the replay removes the old folder (and all below it) before making the new one.
        deleted |= {p for p, s in after.stamps.items()
                    if s[0] in (WHITEOUT, OPAQUE_DIR) and self.stamps.get(p, (0,))[0] != s[0]}
        return changed, sorted(deleted)


# Stamp types of an overlay's upper folder beside S_IFMT's: a whiteout (a character device 0/0
# hides a lower path) and an opaque folder (it hides everything of the lower folder below it).
WHITEOUT = -1
OPAQUE_DIR = -2


def _stamps(root: Path, overlay: bool) -> dict[str, Stamp]:
    """The stamp of every entry below ROOT; OVERLAY: ROOT is an overlay's upper folder."""
    stamps: dict[str, Stamp] = {}
    top = os.fspath(root)
    skip = len(top) + 1
    for directory, dirnames, filenames in os.walk(top):
        # os.walk's folders all start with TOP + "/": slicing is os.path.relpath without its cost.
        prefix = directory[skip:] + "/" if directory != top else ""
        for name in dirnames + filenames:
            path = os.path.join(directory, name)
            info = os.lstat(path)
            kind = stat.S_IFMT(info.st_mode)
            if overlay and stat.S_ISCHR(info.st_mode) and info.st_rdev == 0:
                kind = WHITEOUT
            elif overlay and stat.S_ISDIR(info.st_mode) and _opaque(path):
                kind = OPAQUE_DIR
            stamps[prefix + name] = (kind, info.st_ino, info.st_ctime_ns)
    return stamps


def _opaque(path: str) -> bool:
    from xarch.run.overlay import opaque_xattr

    try:
        return os.getxattr(path, opaque_xattr(), follow_symlinks=False) == b"y"
    except OSError:
        return False


_TAR_OPTIONS = ("--numeric-owner", "--xattrs", "--xattrs-include=*", "--format=posix")


def _delete(root: Path, relative: str) -> None:
    path = root / relative
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif os.path.lexists(path):
        path.unlink()


class StepCache:
    """Finished build steps by key (xarch.run.cache.step_key): `<root>/<key>/` holds the changes a
    step made to its root (changes.tar) and meta.json; default root `<store>/steps`."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root else store.default_root() / "steps"

    def entry(self, key: str) -> Path:
        """The folder of step KEY's entry; it may not exist."""
        return self.root / key

    def has(self, key: str) -> bool:
        """Whether step KEY has an entry (its meta.json exists; `usable` also checks it is whole)."""
        return (self.entry(key) / "meta.json").is_file()

    def usable(self, key: str) -> bool:
        """True when step KEY's entry is whole: meta.json parses and changes.tar still has the
        sha256 recorded when it was saved. A damaged (or older, unrecorded) entry is deleted, so
        the step runs again and saves it anew; it is never replayed."""
        entry = self.entry(key)
        if not self.has(key):
            return False
        try:
            meta = json.loads((entry / "meta.json").read_bytes())
            recorded = meta.get("changes_sha256") if isinstance(meta, dict) else None
            intact = isinstance(recorded, str) and file_sha256(entry / "changes.tar") == recorded
        except (OSError, ValueError):
            intact = False
        if not intact:
            shutil.rmtree(entry, ignore_errors=True)
        return intact

    def save(self, key: str, rootfs: Path, before: Snapshot, meta: Mapping[str, Any]) -> None:
        """Store what changed in ROOTFS since BEFORE as the result of step KEY."""
        if self.has(key):
            return  # another build stored the same step first
        changed, deleted = before.changes(Snapshot.of(rootfs))
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=self.root, prefix=".tmp-"))
        try:
            # GNU tar keeps owners, modes, hard links, device nodes and xattrs exactly.
            create = ("--create", "--file", str(tmp / "changes.tar"), "--directory", str(rootfs),
                      "--no-recursion", "--null", "--files-from=-", *_TAR_OPTIONS)
            tar = local["tar"][create]
            # Bytes, so a name that is not UTF-8 reaches tar as it is on disk.
            (tar << b"".join(path_bytes(path) + b"\0" for path in changed))()
            record = {**meta, "deleted": [_json_name(path) for path in deleted], "changed": len(changed),
                      "changes_sha256": file_sha256(tmp / "changes.tar")}
            (tmp / "meta.json").write_bytes(canonical_json(record))
            try:
                os.rename(tmp, self.entry(key))
            except OSError:
                if not self.has(key):
                    raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp)

    def replay(self, key: str, rootfs: Path) -> None:
        """Apply step KEY's changes to ROOTFS (which must be the root as it was before that step)."""
        meta = json.loads((self.entry(key) / "meta.json").read_bytes())
        deleted = [_name_of(name) for name in meta["deleted"]]
        for relative in sorted(deleted, reverse=True):
            _delete(rootfs, relative)
        extract = ("--extract", "--file", str(self.entry(key) / "changes.tar"), "--directory", str(rootfs),
                   "--preserve-permissions", *_TAR_OPTIONS)
        local["tar"][extract]()
