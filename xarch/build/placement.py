"""Entries where a runtime would put them: through the image's own symlinks, never below one.

A layer is applied by Docker, containerd or umoci to a root that already holds the
image's symlinks (bin -> usr/bin on merged /usr). An entry `bin/hello` in the same
layer as the link `bin` is refused by Docker's loader ("open /bin/hello: no such file or
directory") and silently followed by umoci. So before any layer is written, `settle`
moves every entry whose folders pass through a symlink to a folder of the tree to the
path that symlink leads to (bin/hello -> usr/bin/hello), reading absolute link targets
from the image root, never the host's. The entry moved replaces what was at its new path
(it was added later: a recipe file over a package's). Hard-link targets are renamed with
it. A link that leads to no folder (dangling, a loop, out of the root) moves nothing:
xarch.build.treecheck.check_extractable then refuses the entry in one line.

It also refuses, in one line naming the path, a name a runtime would treat as an
instruction rather than a file: the OCI whiteouts `.wh.NAME` and `.wh..wh..opq`
(image-spec layer.md, "Whiteouts").
"""

from __future__ import annotations

import posixpath
from dataclasses import replace

from xarch.build.treecheck import BrokenTree, origin_error
from xarch.oci.tree import Tree, path_bytes
from xarch.recipe import LoadedRecipe
from xarch.sources.debian.deb import resolve
from xarch.sources.debian.errors import UnpackError

WHITEOUT_PREFIX = ".wh."


def _resolved_parent(tree: Tree, path: str) -> str:
    """Where PATH lands when its folders are followed through the tree's symlinks; PATH
    itself when that does not lead to a folder of the tree (a dangling link, a loop, a
    link out of the root): xarch.build.treecheck then names the entry and where it came from."""
    parent, name = posixpath.split(path)
    if not parent:
        return path
    try:
        where = resolve(tree, parent, follow_last=True, what=f"/{path}")
    except UnpackError:
        return path
    holder = tree.entries.get(where)
    if holder is None or holder.type != "dir":
        return path
    return f"{where}/{name}"


def settle(tree: Tree, loaded: LoadedRecipe | None = None) -> list[tuple[str, str]]:
    """Move every entry of TREE whose folders pass through a symlink to a folder of the
    tree to where that link leads; the (old, new) paths moved, in path order.

    Raises BrokenTree (exit 2; one line, naming the recipe item when LOADED is given) for a
    whiteout name (`.wh.` prefix, OCI image spec "Whiteouts" in layer.md).
    """
    moved: list[tuple[str, str]] = []
    for path in sorted(tree.entries, key=path_bytes):
        entry = tree.entries.get(path)
        if entry is None:
            continue
        if posixpath.basename(path).startswith(WHITEOUT_PREFIX):
            message = (f"/{path}: a name starting with {WHITEOUT_PREFIX} is a whiteout, which runtimes "
                       "apply as a deletion, not a file; rename it")
            raise BrokenTree(origin_error(loaded, entry.origin, message) if loaded else message)
        target = _resolved_parent(tree, path)
        if target == path:
            continue
        del tree.entries[path]
        tree.entries[target] = replace(entry, path=target)
        moved.append((path, target))
    if moved:
        renamed = dict(moved)
        for key, entry in tree.entries.items():
            if entry.type == "hardlink" and entry.linkname in renamed:
                tree.entries[key] = replace(entry, linkname=renamed[entry.linkname])
    return moved
