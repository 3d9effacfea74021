"""What a build reads from the recipe folder: `.xarchignore`, built-in ignores, stage inputs.

`.xarchignore` sits beside the recipe and has `.dockerignore` syntax
(https://docs.docker.com/build/concepts/context/#dockerignore-files): one pattern a line,
relative to the recipe folder (a leading `/` changes nothing), `#` starts a comment, `*` and
`?` stay within one path part, `**` spans any number of parts, a pattern that names a folder
excludes everything below it, `!pattern` re-includes, and the last matching line wins.
The built-in patterns (BUILTIN_IGNORES) come first, so `.xarchignore` can re-include them.

The matching is pathspec's gitignore matcher (a maintained library) with every pattern
anchored at the recipe folder, which is what `.dockerignore` does: `*.log` there means
`/*.log` in gitignore terms; `**/*.log` reaches every depth.

It applies to `files:` folders (image and stages) and to what a stage's steps see at /src
(its `source:` folder, narrowed by its `inputs:`), so an ignored file neither reaches an
image nor changes a cache key.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import pathspec

from xarch.errors import InputError

if TYPE_CHECKING:
    from xarch.recipe import LoadedRecipe, StageSpec

IGNORE_FILE = ".xarchignore"

# Never source: version control, tool caches and virtualenvs at any depth, editor swap and
# backup files, and xarch's own default output folder (`dist/`) at the top of the recipe folder.
BUILTIN_IGNORES: tuple[str, ...] = (
    "**/.git", "**/.hg", "**/.svn", "**/.tox", "**/.venv", "**/__pycache__", "**/.mypy_cache",
    "**/.pytest_cache", "**/*.swp", "**/*.swo", "**/*~", "**/.#*", "**/.DS_Store",
    "dist",
)
# Also left out of a stage's /src (not of `files:` folders): the recipe file and its lock; a
# step's result must not depend on them (the stage's own fields are in its cache key).
LOCK_FILE = "xarch.lock"
# A pattern list, not data: a bigger file is a mistake (or /dev/zero behind a name).
MAX_IGNORE_FILE = 1024 * 1024  # bytes


def _anchored(line: str) -> str | None:
    """One `.dockerignore` line as an anchored gitignore pattern (None: blank or comment)."""
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    negate = text.startswith("!")
    body = text[1:].strip() if negate else text
    body = "/".join(part for part in body.split("/") if part not in ("", "."))  # as Go's filepath.Clean
    if not body:
        return None
    return ("!" if negate else "") + "/" + body


def compile_patterns(lines: Iterable[str], where: str) -> pathspec.PathSpec:
    """Compile `.dockerignore`-style LINES (module docstring) into one anchored gitignore
    PathSpec; raises InputError (exit 2) naming WHERE:line for a NUL byte or a bad pattern."""
    patterns: list[str] = []
    for number, line in enumerate(lines, start=1):
        if "\x00" in line:
            raise InputError(f"{where}:{number}: a pattern must not contain a NUL byte")
        anchored = _anchored(line)
        if anchored is None:
            continue
        try:
            pathspec.GitIgnoreSpec.from_lines([anchored])
        except (ValueError, TypeError) as error:
            raise InputError(f"{where}:{number}: {line.strip()!r} is not a pattern: {error}") from None
        patterns.append(anchored)
    return pathspec.GitIgnoreSpec.from_lines(patterns)


@dataclass(frozen=True)
class Matcher:
    """A compiled pattern list; `negates` says whether an excluded folder may hold included files."""

    spec: pathspec.PathSpec
    negates: bool

    def matches(self, relative: str) -> bool:
        """Whether RELATIVE (POSIX, below the recipe folder; a folder ends in "/") is matched,
        gitignore-style: the last matching pattern wins, `!` re-includes. Raises nothing."""
        return bool(self.spec.match_file(relative))


def _matcher(lines: Sequence[str], where: str) -> Matcher:
    spec = compile_patterns(lines, where)
    return Matcher(spec, any(line.strip().startswith("!") for line in lines))


# What this process writes (build outputs, the cache folder; set by never_source).
_WRITTEN: list[Path] = []


def never_source(paths: Iterable[Path]) -> None:
    """Leave PATHS (what a build writes: its outputs, XARCH_CACHE) out of every folder it reads,
    after `.xarchignore` (a `!` there cannot bring them back): an `-o oci:out` inside the recipe
    folder must not put the last build's image into the next one. Relative PATHS are from the
    current folder; the last component is not resolved (an output may not exist yet)."""
    _WRITTEN[:] = [path.parent.resolve() / path.name if path.name not in ("", ".", "..") else path.resolve()
                   for path in (Path(os.path.abspath(p)) for p in paths)]


def never_source_also(path: Path) -> None:
    """Add PATH (the build's own temporary folder, made once it runs: TMPDIR may lie in the recipe
    folder) to what never_source left out."""
    _WRITTEN.append(path.resolve())


def _literal(relative: str) -> str:
    """RELATIVE (POSIX, below the folder) as an anchored gitignore pattern matching it alone."""
    escaped = "".join("\\" + c if c in "\\*?[" else c for c in relative)
    return "/" + (escaped[:-1] + "\\ " if escaped.endswith(" ") else escaped)


@lru_cache(maxsize=64)
def _ignore_for(folder: str, text: str | None, extra: tuple[str, ...],
                written: tuple[str, ...] = ()) -> Matcher:
    builtin = list(BUILTIN_IGNORES) + list(extra)
    where = os.path.join(folder, IGNORE_FILE)
    own = text.splitlines() if text is not None else []
    # Line numbers in errors are the file's own: check the user's lines on their own first.
    compile_patterns(own, where)
    matcher = _matcher(builtin + own, where)
    if not written:
        return matcher
    return Matcher(matcher.spec + pathspec.GitIgnoreSpec.from_lines(written), matcher.negates)


def ignore_matcher(folder: Path, extra: tuple[str, ...] = ()) -> Matcher:
    """The ignore rules of the recipe FOLDER: built-in patterns, EXTRA, its `.xarchignore`, then
    what this build writes (never_source). Raises InputError for an unreadable or bad file."""
    root = folder.resolve()
    written = tuple(sorted(_literal(p.relative_to(root).as_posix()) for p in _WRITTEN if root in p.parents))
    return _ignore_for(str(folder), _read_ignore_file(folder / IGNORE_FILE), extra, written)


def _read_ignore_file(path: Path) -> str | None:
    """PATH's text, or None when there is none. Only a regular file of the folder itself is
    read: a symlink (which may lead to any host file), a FIFO (would block), a device or a file
    over MAX_IGNORE_FILE is one line, never skipped in silence."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as error:
        if os.path.islink(path):
            raise InputError(f"{path}: is a symbolic link; xarch reads only a regular file here") from None
        raise InputError(f"{path}: cannot read: {error.strerror}") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise InputError(f"{path}: is not a regular file")
    with os.fdopen(fd, "rb") as handle:
        if info.st_size > MAX_IGNORE_FILE:
            raise InputError(f"{path}: is {info.st_size} bytes, more than {MAX_IGNORE_FILE}")
        try:
            return handle.read(MAX_IGNORE_FILE + 1).decode("utf-8")
        except UnicodeDecodeError:
            raise InputError(f"{path}: not UTF-8 text") from None
        except OSError as error:
            raise InputError(f"{path}: cannot read: {error.strerror}") from None


def inputs_matcher(patterns: Sequence[str], where: str) -> Matcher:
    """A stage's `inputs:` globs (same syntax as `.xarchignore`, relative to its `source:`);
    raises InputError (exit 2) naming WHERE:N (the Nth pattern) for a bad one."""
    return _matcher(list(patterns), where)


def select(folder: Path, start: Path, ignore: Matcher, inputs: Matcher | None = None,
           special: Callable[[str, int], None] | None = None) -> list[str]:
    """Paths below START (relative to START, POSIX) that a build reads, in a walk order that
    does not depend on the file system: top down, each folder's names sorted.

    A path is left out when IGNORE matches it relative to FOLDER (the recipe folder), or when
    INPUTS is given and does not match it relative to START. A folder is kept when it is kept
    itself or holds a kept path. FIFOs, sockets and devices are never source: SPECIAL (relative
    path, st_mode) is called for each one IGNORE does not match (`files:` refuses them), else they
    are left out. START must lie within FOLDER (else ValueError, a bug); OSError from the walk
    propagates; SPECIAL's own exception too."""
    prefix = start.relative_to(folder).as_posix()
    prefix = "" if prefix == "." else prefix + "/"
    order: list[str] = []  # every candidate, in walk order
    kept: set[str] = set()
    for directory, dirnames, filenames in os.walk(start):
        relative_dir = Path(directory).relative_to(start).as_posix()
        relative_dir = "" if relative_dir == "." else relative_dir + "/"
        walked = []
        for name in sorted(dirnames + filenames):
            path = os.path.join(directory, name)
            relative = relative_dir + name
            mode = os.lstat(path).st_mode
            if not (stat.S_ISREG(mode) or stat.S_ISLNK(mode) or stat.S_ISDIR(mode)):
                if special is not None and not ignore.matches(prefix + relative):
                    special(relative, mode)
                continue
            is_dir = stat.S_ISDIR(mode)
            ignored = ignore.matches(prefix + relative + ("/" if is_dir else ""))
            if is_dir:
                if ignored and not ignore.negates:
                    continue  # nothing below can come back
                walked.append(name)
            order.append(relative)
            if not ignored and (inputs is None or inputs.matches(relative)):
                kept.add(relative)
                _mark_parents(relative, kept)
        dirnames[:] = walked  # a symlink to a folder is in filenames: a link, never walked
    return [relative for relative in order if relative in kept]


def _mark_parents(relative: str, marked: set[str]) -> None:
    parent = os.path.dirname(relative)
    while parent and parent not in marked:
        marked.add(parent)
        parent = os.path.dirname(parent)


def copy_selected(start: Path, paths: Sequence[str], target: Path) -> None:
    """Copy PATHS (select's answer for START) to TARGET: files with their mode bits, symlinks as links.

    TARGET and missing parents are created; OSError (e.g. ENOSPC, an existing path) propagates."""
    target.mkdir(parents=True, exist_ok=True)
    for relative in paths:
        source, destination = start / relative, target / relative
        if source.is_symlink():
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.symlink_to(os.readlink(source))
        elif source.is_dir():
            destination.mkdir(parents=True, exist_ok=True)
        else:
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination)


def stage_inputs(loaded: LoadedRecipe, name: str, spec: StageSpec) -> tuple[Path, list[str]]:
    """(the stage's `source:` folder, the paths below it its steps see at /src).

    Default (no `inputs:`): everything in `source:` (the recipe folder unless set) that neither
    `.xarchignore` nor the built-in ignores leave out, without the recipe and its lock. With
    `inputs:`: only the paths its globs match (relative to `source:`), still minus the ignored.
    Raises RecipeError (exit 2) for a `source:` outside the recipe folder or missing, InputError
    (exit 2) for a bad `.xarchignore` or `inputs:` pattern."""
    folder = loaded.folder.resolve()
    start = (loaded.folder / spec.source).resolve()
    if start != folder and folder not in start.parents:
        raise loaded.error(("stages", name, "source"), f"{spec.source} is outside the recipe's folder")
    if not start.is_dir():
        raise loaded.error(("stages", name, "source"), f"{spec.source}: no such folder")
    inputs = None
    if spec.inputs is not None:
        inputs = inputs_matcher(spec.inputs, f"{loaded.path}: stages.{name}.inputs")
    return start, select(folder, start, ignore_matcher(folder, (loaded.path.name, LOCK_FILE)), inputs)


def copy_stage_inputs(loaded: LoadedRecipe, name: str, spec: StageSpec, target: Path) -> None:
    """Copy what stage NAME reads (stage_inputs) to TARGET, which becomes its /src; raises as
    stage_inputs and copy_selected."""
    start, paths = stage_inputs(loaded, name, spec)
    copy_selected(start, paths, target)
