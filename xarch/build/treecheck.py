"""A final image tree must unpack the same everywhere: checks, and errors that name the recipe field.

A layer is a tar that runtimes extract in order; an entry below a symlink (or a file) of the
same image, such as `/bin/app` where packages made `/bin -> usr/bin`, or anything below a
symlink loop, is extracted differently by each tool or not at all (GNU tar refuses it,
containerd resolves it inside the root). A hard link must name a regular file of the image.
So such trees are refused, with one line naming the path and the recipe field it came from.
"""

from __future__ import annotations

import posixpath

from xarch.errors import BuildError
from xarch.oci.tree import Entry, Tree
from xarch.recipe import LoadedRecipe, format_error, format_loc


class BrokenTree(BuildError):
    """The image tree would not unpack (exit 2)."""


def recipe_locs(loaded: LoadedRecipe) -> dict[str, tuple[str | int, ...]]:
    """Entry origins that are recipe items ("files[0]", "copy[2]") → their place in the recipe
    (keys and indexes, as LoadedRecipe.error takes them). Raises nothing."""
    recipe = loaded.recipe
    counts = {"files": len(recipe.files), "directories": len(recipe.directories),
              "symlinks": len(recipe.symlinks), "copy": len(recipe.copy_)}
    return {format_loc((name, index)): (name, index)
            for name, count in counts.items() for index in range(count)}


def origin_error(loaded: LoadedRecipe, origin: str, message: str) -> str:
    """MESSAGE prefixed with where ORIGIN is: "xarch.yaml:12: copy[0]: …" for a recipe item,
    "xarch.yaml:7: packages: package busybox 1.35 (arm64): …" for a package's file. Returns the
    text for the caller's error; raises nothing."""
    loc = recipe_locs(loaded).get(origin)
    if loc is not None:
        return format_error(loaded.path, loaded.positions.line_of(loc), loc, message)
    if origin.startswith("package "):  # the recipe's `packages:` brought it
        loc = ("packages",)
        return format_error(loaded.path, loaded.positions.line_of(loc), loc, f"{origin}: {message}")
    return f"{loaded.path}: {origin or 'made by xarch'}: {message}"


def _describe(entry: Entry) -> str:
    what = f"a symlink to {entry.linkname}" if entry.type == "symlink" else f"a {entry.type}"
    return f"{what}{f' (from {entry.origin})' if entry.origin else ''}"


def check_extractable(loaded: LoadedRecipe, tree: Tree) -> None:
    """Raise BrokenTree (exit 2) for the first entry of TREE (path order) below a non-folder, or
    hard link to a non-file, naming the recipe field it came from (origin_error)."""
    entries = tree.entries
    for entry in tree:
        parent = posixpath.dirname(entry.path)
        while parent:
            above = entries.get(parent)
            if above is not None and above.type != "dir":
                hint = "; write the path it resolves to instead" if above.type == "symlink" else ""
                message = f"/{entry.path} is below /{parent}, which is {_describe(above)} in the image{hint}"
                raise BrokenTree(origin_error(loaded, entry.origin, message))
            parent = posixpath.dirname(parent)
        if entry.type == "hardlink":
            target = entries.get(entry.linkname)
            if target is None or target.type not in ("file", "hardlink"):
                found = _describe(target) if target else "nothing"
                message = f"/{entry.path} is a hard link to /{entry.linkname}, which is {found} in the image"
                raise BrokenTree(origin_error(loaded, entry.origin, message))
