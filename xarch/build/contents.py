"""The recipe's files, directories and symlinks → one platform's image Tree.

Nothing of the build host leaks in: modes are normalized the way git stores them
(0755 when any execute bit is set, else 0644; folders 0755) unless the recipe gives a
mode, so the umask under which a checkout was made does not matter; mtimes are
dropped (the layer writer uses the epoch); owners come from the recipe (default 0:0).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from xarch.build.ignorefile import ignore_matcher, select
from xarch.oci.tree import Entry, Tree, TreeError
from xarch.platforms import Platform
from xarch.recipe import FileSpec, LoadedRecipe, format_loc, is_root
from xarch.run.fsmeta import HardLinks, kept_xattrs


def _git_like_mode(mode: int) -> int:
    # As git does: only the owner's execute bit counts (group/other bits follow the umask).
    return 0o755 if mode & 0o100 else 0o644


Loc = tuple[str | int, ...]


def expand_source(loaded: LoadedRecipe, loc: Loc, spec: FileSpec, platform: Platform) -> Path:
    """The source path of the file spec at LOC for PLATFORM, checked to exist in the recipe folder.

    `{name}` placeholders in `src` are PLATFORM's (str.format_map). Raises RecipeError (exit 2)
    naming file:line and `src` for an unknown or bad placeholder, a path outside the recipe
    folder, a missing source, or one that is neither a regular file nor a folder."""
    src_loc = (*loc, "src")
    try:
        relative = spec.src.format_map(platform.placeholders())
    except KeyError as error:
        known = ", ".join("{" + k + "}" for k in platform.placeholders())
        message = f"unknown placeholder {{{error.args[0]}}} (known: {known})"
        raise loaded.error(src_loc, message) from None
    except (ValueError, IndexError) as error:
        raise loaded.error(src_loc, f"bad placeholder: {error}") from None
    folder = loaded.folder.resolve()
    source = (loaded.folder / relative).resolve()
    if source != folder and folder not in source.parents:
        raise loaded.error(src_loc, f"{relative} is outside the recipe's folder")
    if not source.exists():
        raise loaded.error(src_loc, f"{relative}: no such file (platform {platform.name})")
    if not (source.is_file() or source.is_dir()):
        # Reading a FIFO would wait forever; a socket or device has no bytes to put in a layer.
        raise loaded.error(src_loc, f"{relative}: not a regular file or folder")
    return source


def all_file_specs(loaded: LoadedRecipe) -> list[tuple[Loc, FileSpec]]:
    """Every `files:` entry of the recipe, the image's then each stage's in recipe order, as
    (location in the recipe, e.g. ("stages", "build", "files", 0), spec). Raises nothing."""
    specs: list[tuple[Loc, FileSpec]] = [(("files", i), f) for i, f in enumerate(loaded.recipe.files)]
    for name, stage in loaded.recipe.stages.items():
        specs += [(("stages", name, "files", i), f) for i, f in enumerate(stage.files)]
    return specs


def check_sources(loaded: LoadedRecipe, platforms: tuple[Platform, ...]) -> None:
    """Check every platform's sources exist before the build begins (and says so).

    Raises RecipeError (exit 2) for the first bad source, as expand_source."""
    for platform in platforms:
        for loc, spec in all_file_specs(loaded):
            if spec.platforms is None or platform.name in spec.platforms:
                expand_source(loaded, loc, spec, platform)


def _copy_folder(tree: Tree, source: Path, destination: str, spec: FileSpec, origin: str,
                 loaded: LoadedRecipe) -> None:
    uid, gid = spec.owner
    tree.add(Entry(destination, "dir", 0o755, uid, gid, origin=origin))
    links = HardLinks()
    # .xarchignore and the built-in ignores (xarch/build/ignorefile.py) leave out .git, caches,
    # editor files …; select sorts by name bytes, so the walk itself is reproducible.
    # A FIFO, socket or device that is not ignored has no bytes to put in a layer; leaving it
    # out silently would ship an image that lacks a path its recipe folder has (SpecialFileError).
    folder = loaded.folder.resolve()

    def refuse(relative: str, mode: int) -> None:
        raise SpecialFileError(relative, _kind(mode))

    for relative in select(folder, source, ignore_matcher(folder), special=refuse):
        path = source / relative
        info = path.lstat()
        image_path = destination.rstrip("/") + "/" + relative
        if stat.S_ISLNK(info.st_mode):
            tree.add(Entry(image_path, "symlink", 0o777, uid, gid, linkname=os.readlink(path), origin=origin))
        elif stat.S_ISDIR(info.st_mode):
            tree.add(Entry(image_path, "dir", 0o755, uid, gid, origin=origin))
        elif stat.S_ISREG(info.st_mode):
            mode = spec.mode if spec.mode is not None else _git_like_mode(info.st_mode)
            first = links.seen(info, image_path)
            if first is not None:  # a hard link of a file already taken stays a link
                tree.add(Entry(image_path, "hardlink", mode, uid, gid, linkname=first, origin=origin))
            else:
                tree.add(Entry(image_path, "file", mode, uid, gid, source=path, xattrs=kept_xattrs(path),
                               origin=origin))


class SpecialFileError(Exception):
    """A FIFO, socket or device inside a folder that `files:` copies: (relative path, kind)."""


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a device node"


def add_file_specs(loaded: LoadedRecipe, tree: Tree, specs: list[FileSpec], platform: Platform,
                   loc: Loc) -> None:
    """Copy the files and folders SPECS name (at LOC in the recipe) into TREE for PLATFORM.

    Modes as git stores them unless the spec gives one, mtimes dropped, owners from the spec;
    folders walked by `select` (.xarchignore applies). Raises RecipeError (exit 2) for a bad
    source (expand_source), a FIFO/socket/device in a folder, a file copied to `/`, or a
    destination the tree refuses (TreeError); InputError (exit 2) for a bad .xarchignore."""
    for index, spec in enumerate(specs):
        if spec.platforms is not None and platform.name not in spec.platforms:
            continue
        source = expand_source(loaded, (*loc, index), spec, platform)
        origin = format_loc((*loc, index))
        with _field(loaded, (*loc, index, "dst")):
            tree.add_parents(spec.dst)
            if source.is_dir():
                try:
                    _copy_folder(tree, source, spec.dst, spec, origin, loaded)
                except SpecialFileError as error:
                    inside, kind = error.args
                    raise loaded.error((*loc, index, "src"), f"{spec.src}/{inside} is {kind}; only files, "
                                       "folders and symlinks can go into an image (or list it in "
                                       ".xarchignore)") from None
            elif is_root(spec.dst):
                raise loaded.error((*loc, index, "dst"), f"{spec.src} is a file; only a folder can be copied "
                                   "as the image root /")
            else:
                mode = spec.mode if spec.mode is not None else _git_like_mode(source.stat().st_mode)
                tree.add(Entry(spec.dst, "file", mode, *spec.owner, source=source, xattrs=kept_xattrs(source),
                               origin=origin))


@contextmanager
def _field(loaded: LoadedRecipe, loc: Loc) -> Iterator[None]:
    """A value the image tree refuses (TreeError) is the recipe's error at LOC: file, line, field."""
    try:
        yield
    except TreeError as error:
        raise loaded.error(loc, str(error)) from None


def recipe_tree(loaded: LoadedRecipe, platform: Platform, tree: Tree | None = None) -> Tree:
    """Add the recipe's own contents for PLATFORM to TREE (a new one by default): `directories:`,
    `files:` (add_file_specs), then `symlinks:`; returns TREE. Raises RecipeError (exit 2)
    naming file:line and field for a path or entry the tree refuses, else as add_file_specs."""
    recipe = loaded.recipe
    tree = tree if tree is not None else Tree()
    for index, directory in enumerate(recipe.directories):
        with _field(loaded, ("directories", index, "path")):
            tree.add_parents(directory.path)
            tree.add(Entry(directory.path, "dir", directory.mode, *directory.owner,
                           origin=format_loc(("directories", index))))
    add_file_specs(loaded, tree, recipe.files, platform, ("files",))
    for index, link in enumerate(recipe.symlinks):
        with _field(loaded, ("symlinks", index, "target")):
            tree.add_parents(link.path)
            tree.add(Entry(link.path, "symlink", 0o777, *link.owner, linkname=link.target,
                           origin=format_loc(("symlinks", index))))
    return tree
