"""Entries where a runtime would put them: through the image's own symlinks, never below one.

A layer is applied by Docker, containerd or umoci to a root that already holds the
image's symlinks (bin -> usr/bin on merged /usr). An entry `bin/hello` in the same
layer as the link `bin` is refused by Docker's loader ("open /bin/hello: no such file or
directory") and silently followed by umoci. So before any layer is written, `settle`
moves every entry whose folders pass through a symlink of the tree to the path that
symlink leads to (bin/hello -> usr/bin/hello), reading absolute link targets from the
image root, never the host's. The entry moved replaces what was at its new path (it was
added later: a recipe file over a package's). Hard-link targets are moved the same way.

It also refuses, in one line naming the path, a name a runtime would treat as an
instruction rather than a file: the OCI whiteouts `.wh.NAME` and `.wh..wh..opq`
(image-spec layer.md, "Whiteouts").
"""

from __future__ import annotations

import posixpath
from dataclasses import replace

from xarch.errors import BuildError
from xarch.oci.tree import Tree
from xarch.sources.debian.deb import resolve
from xarch.sources.debian.errors import UnpackError

WHITEOUT_PREFIX = ".wh."


def _resolved_parent(tree: Tree, path: str) -> str:
    parent, name = posixpath.split(path)
    if not parent:
        return path
    try:
        where = resolve(tree, parent, follow_last=True, what=f"/{path}")
    except UnpackError as error:
        raise BuildError(f"image path {error}") from None  # the error starts with /PATH
    return f"{where}/{name}" if where else name


def settle(tree: Tree) -> list[tuple[str, str]]:
    """Move every entry of TREE that lies below a symlink to where the link leads; the
    (old, new) paths moved, in path order.

    Raises BuildError for a whiteout name, for a symlink on the way that climbs out of
    the image root, and for a path whose folder resolves to something that is not a
    folder in the image.
    """
    moved: list[tuple[str, str]] = []
    for path in sorted(tree.entries, key=lambda p: p.encode()):
        name = posixpath.basename(path)
        if name.startswith(WHITEOUT_PREFIX):
            raise BuildError(f"image path /{path}: a name starting with {WHITEOUT_PREFIX} is a whiteout, "
                             "which runtimes apply as a deletion, not a file; rename it")
        entry = tree.entries.get(path)
        if entry is None:
            continue  # moved with an earlier entry
        target = _resolved_parent(tree, path)
        if target == path:
            continue
        folder = posixpath.dirname(target)
        holder = tree.entries.get(folder)
        if holder is not None and holder.type != "dir":
            raise BuildError(f"image path /{path}: its folder /{folder} is a {holder.type}")
        del tree.entries[path]
        tree.add_parents(target)
        tree.entries[target] = replace(entry, path=target)
        moved.append((path, target))
    if moved:
        renamed = dict(moved)
        for key, entry in tree.entries.items():
            if entry.type == "hardlink" and entry.linkname in renamed:
                tree.entries[key] = replace(entry, linkname=renamed[entry.linkname])
    return moved
