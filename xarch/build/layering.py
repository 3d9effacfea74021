"""Split a Tree into the recipe's named layers by ordered globs.

Each entry goes to the first layer with a matching glob; entries no glob matches go
to the last layer. Every layer also carries the parent folders of its entries (with
their metadata from the tree) so it unpacks on its own, and a base layer's digest does
not move when only the app layer changes.
"""

from __future__ import annotations

import posixpath
from dataclasses import replace

from xarch.oci.pathglob import matches
from xarch.oci.tree import Entry, Tree
from xarch.recipe import LayerSpec

# model_construct: literal values of xarch's own need no check (nor a validator built at import)
DEFAULT_LAYER = LayerSpec.model_construct(name="main", paths=["**"])


def _layer_of(path: str, specs: list[LayerSpec]) -> int:
    """Position of the first layer with a glob matching PATH; the last layer otherwise."""
    for position, spec in enumerate(specs):
        if any(matches(pattern, path) for pattern in spec.paths):
            return position
    return len(specs) - 1


# Without `layers:`, entries are split by where they came from, in the order they change
# least often to most often, so an app edit does not re-upload libc: packages (and what xarch
# writes for them and the accounts), then what is copied out of stages, then the recipe's
# own files, directories and symlinks. A recipe with only one kind keeps the single layer "main".
DEFAULT_KINDS = ("packages", "stages", "files")


def origin_kind(entry: Entry) -> int | None:
    """Position in DEFAULT_KINDS of ENTRY's origin ("copy[0]": stages, "files[1]": files);
    None for a folder nothing named (a parent made on the way), which goes with the first kind."""
    if entry.origin.startswith(("copy[", "copy.")):
        return 1
    if entry.origin.startswith(("files[", "directories[", "symlinks[")):
        return 2
    if not entry.origin and entry.type == "dir":
        return None
    return 0


def split_layers(tree: Tree, specs: list[LayerSpec]) -> list[tuple[str, list[Entry]]]:
    """TREE as [(layer name, entries)] in layer order, empty layers left out (module docstring).

    SPECS (the recipe's `layers:`): first matching glob wins (xarch/oci/pathglob.py), the last
    layer takes the rest; none: split by origin into DEFAULT_KINDS, or one "main" layer. Each
    layer gets its entries' parent folders; a hard link into another layer becomes a copy of
    its file. Raises nothing (every glob compiles)."""
    if specs:
        assigned: list[dict[str, Entry]] = [{} for _ in specs]
        for entry in tree:
            assigned[_layer_of(entry.path, specs)][entry.path] = entry
    else:
        assigned = [{} for _ in DEFAULT_KINDS]
        parents = []
        for entry in tree:
            kind = origin_kind(entry)
            if kind is None:
                parents.append(entry)
            else:
                assigned[kind][entry.path] = entry
        first = next((kind for kind, members in enumerate(assigned) if members), 0)
        for entry in parents:
            assigned[first][entry.path] = entry
        if sum(1 for members in assigned if members) <= 1:
            specs, assigned = [DEFAULT_LAYER], [{entry.path: entry for entry in tree}]
        else:
            specs = [LayerSpec.model_construct(name=name, paths=[]) for name in DEFAULT_KINDS]
    for members in assigned:
        for path in list(members):
            parent = posixpath.dirname(path)
            while parent and parent not in members:
                parent_entry = tree.get(parent)
                members[parent] = parent_entry if parent_entry else Entry(parent, "dir", 0o755)
                parent = posixpath.dirname(parent)
    for members in assigned:
        _copy_foreign_hardlinks(tree, members)
    pairs = zip(specs, assigned, strict=True)
    return [(spec.name, list(members.values())) for spec, members in pairs if members]


def _copy_foreign_hardlinks(tree: Tree, members: dict[str, Entry]) -> None:
    """A hard link whose file landed in another layer becomes a copy of that file."""
    for path, entry in list(members.items()):
        if entry.type == "hardlink" and entry.linkname not in members:
            target = tree.get(entry.linkname)
            while target is not None and target.type == "hardlink":
                target = tree.get(target.linkname)
            if target is not None and target.type == "file":
                members[path] = replace(entry, type="file", linkname="", data=target.data,
                                        source=target.source)
