"""A stage root on disk, assembled from its tree without copying cached package files.

`assemble` makes the folder a step sees as `/`: when xarch may mount (root, in its private
mount namespace: xarch.run.overlay), an overlayfs mount whose read-only lower layer is a
*farm* (the tree's folders, symlinks and small files, and a hard link to the cached bytes of
every package file: xarch.pkgtrees), and whose upper layer, in the build's folder, takes every
write. Otherwise every file is written (xarch.rootfs.materialize), from the cached bytes.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from xarch.oci.tree import Tree
from xarch.pkgtrees import PackageTrees, farm_key
from xarch.rootfs import hand_over_all, materialize
from xarch.run import overlay
from xarch.store import Store


def assemble(tree: Tree, store: Store, base: Path, root: Path) -> None:
    """Make ROOT (an empty folder) hold TREE; BASE (ROOT's parent, the stage's build folder)
    holds the overlay's upper and work folders when ROOT is a mount."""
    if overlay.available():
        from xarch.run.sandbox import host_owner

        trees = PackageTrees(store, host_owner())
        lower = farm(tree, trees)
        upper, work = base / "upper", base / "work"
        upper.mkdir()
        work.mkdir()
        os.lchown(upper, trees.owner, trees.owner)  # the root folder the step sees: its own
        os.chmod(upper, 0o755)
        if overlay.mount(lower, upper, work, root):
            return
    materialize(tree, root)


def farm(tree: Tree, trees: PackageTrees) -> Path:
    """The overlay lower folder holding TREE, all of it owned by TREES' owner (the sandbox id).

    Kept in the cache folder (hard links need its file system; 0700, so no other account
    enters it), keyed by xarch.pkgtrees.farm_key: a rebuild with the same root makes nothing.
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
