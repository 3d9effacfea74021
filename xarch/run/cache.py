"""Step cache: the stage root after a step, keyed by everything that can change it.

Layout: <store root>/steps/<key>/{rootfs/, meta.json}. An entry is built in a temporary
directory and renamed into place, so a reader never sees half an entry. Keys chain
(each includes the previous step's key): a changed input reruns its step and all after.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from plumbum import local

from xarch import store

KEY_VERSION = "xarch-step-cache/1"


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


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


def tree_digest(root: Path) -> str:
    """sha256 over the paths, kinds, modes and contents of the files under ROOT, in a fixed order."""
    hasher = hashlib.sha256()
    if not root.exists():
        return hasher.hexdigest()
    for path in sorted(root.rglob("*"), key=lambda p: p.relative_to(root).as_posix().encode()):
        rel = path.relative_to(root).as_posix()
        info = path.lstat()
        if path.is_symlink():
            record = ["l", rel, os.readlink(path)]
        elif path.is_dir():
            record = ["d", rel, oct(info.st_mode & 0o7777)]
        else:
            record = ["f", rel, oct(info.st_mode & 0o7777), _file_sha256(path)]
        hasher.update(canonical_json(record) + b"\n")
    return hasher.hexdigest()


def _file_sha256(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(store.CHUNK), b""):
            hasher.update(chunk)
    return hasher.hexdigest()


def _copy_tree(source: Path, target: Path) -> None:
    # cp -a keeps owners, modes, symlinks, hard links, device nodes and xattrs, which
    # shutil.copytree does not all keep.
    local["cp"]["-a", "--reflink=auto", f"{source}/.", str(target)]()


def _empty_dir(directory: Path) -> None:
    for child in directory.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


class StepCache:
    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root else store.default_root() / "steps"

    def entry(self, key: str) -> Path:
        return self.root / key

    def has(self, key: str) -> bool:
        return (self.entry(key) / "meta.json").is_file()

    def save(self, key: str, rootfs: Path, meta: Mapping[str, Any]) -> None:
        """Snapshot ROOTFS as the result of step KEY (no-op when another writer got there first)."""
        if self.has(key):
            return
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=self.root, prefix=".tmp-"))
        try:
            (tmp / "rootfs").mkdir()
            _copy_tree(rootfs, tmp / "rootfs")
            (tmp / "meta.json").write_bytes(canonical_json(dict(meta)))
            try:
                os.rename(tmp, self.entry(key))
            except OSError:
                if not self.has(key):
                    raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp)

    def restore(self, key: str, rootfs: Path) -> None:
        """Make ROOTFS exactly the snapshot of step KEY."""
        rootfs.mkdir(parents=True, exist_ok=True)
        _empty_dir(rootfs)
        _copy_tree(self.entry(key) / "rootfs", rootfs)
